#include "cli/commands.h"
#include "cspine/dicom.h"
#include "cspine/error.h"
#include "cspine/runtime.h"
#include "cspine/volume.h"
#include "util/atomic_file.h"

namespace cspine::cli {

void add_convert(CLI::App& app, Runner& run) {
  struct Options {
    std::string path, out, study, series;
    int threads = 0;
    bool no_tilt_correction = false;
  };
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("convert", "Write the selected CT series of a study as a NIfTI volume (int16 HU)");
  cmd->add_option("path", opt->path, "A study folder (or a folder holding exactly one study)")->required();
  cmd->add_option("-o,--output", opt->out, "Output file, .nii or .nii.gz")->required();
  cmd->add_option("--study", opt->study, "StudyInstanceUID to convert when PATH holds several studies");
  cmd->add_option("--series", opt->series, "SeriesInstanceUID to convert instead of the one cspine selects");
  cmd->add_flag("--no-tilt-correction", opt->no_tilt_correction,
                "Keep tilted-gantry slices as acquired (the affine is then only approximate)");
  cmd->add_option("--threads", opt->threads, "Threads for decoding (0: all cores)")->check(CLI::NonNegativeNumber);
  cmd->callback([opt, &run] {
    run = [opt] {
      const std::string& out = opt->out;
      const bool nii = out.size() > 4 && out.compare(out.size() - 4, 4, ".nii") == 0;
      const bool niigz = out.size() > 7 && out.compare(out.size() - 7, 7, ".nii.gz") == 0;
      if (!nii && !niigz) throw UsageError("output '" + out + "' must end in .nii or .nii.gz");
      check_output_path(out);  // fail before decoding anything
      const StudyIndex index = scan_studies(opt->path, ScanOptions{opt->threads});
      LoadOptions lo;
      lo.threads = opt->threads;
      lo.correct_tilt = !opt->no_tilt_correction;
      const LoadedSeries loaded = load_study(index, opt->study, lo, opt->series);
      write_nifti(loaded.volume, out);
      log_info("wrote " + out);
      return 0;
    };
  });
}

}  // namespace cspine::cli
