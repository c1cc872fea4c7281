// Registers DCMTK's decoders (and encoders) once per process; safe to call from any thread.
#pragma once

namespace cspine::dicom {
void ensure_codecs();
}  // namespace cspine::dicom
