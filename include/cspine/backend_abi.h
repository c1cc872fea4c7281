/* The C boundary between cspine and its LibTorch plugin (libcspine_torch.so), declared once and included by
 * both sides: src/model/torch_backend.cpp defines these functions, src/model/backend_loader.cpp looks them up
 * with dlsym and calls them through pointers of exactly these types (decltype), so a signature changed on one
 * side only no longer compiles (a C function declared twice with different parameters is an error).
 *
 * Plain C on purpose: a LibTorch from a pip wheel may use the pre-C++11 std::string ABI while the Debian
 * libraries of the core use the C++11 one; only C types cross. Bump CSPINE_BACKEND_ABI_VERSION with any change:
 * the loader refuses a plugin built for another version.
 *   3: model loading and running, thread count.  4: segment_volume.  5: device volumes and crops.
 *   6: this header: named status codes, the model's input rules as one struct.
 *   7: model_forward decodes labels by a cspine_decode (argmax, or sigmoid with a threshold); model_load's
 *      exact_numerics. */
#ifndef CSPINE_BACKEND_ABI_H
#define CSPINE_BACKEND_ABI_H

#include <stddef.h>
#include <stdint.h>

#define CSPINE_BACKEND_ABI_VERSION 7
#define CSPINE_MAX_SLICE_OFFSETS 64 /* the contract's limit on input.slice_offsets */
#define CSPINE_MAX_OUTPUTS 8        /* outputs of one model run read back */

#ifdef __cplusplus
extern "C" {
#endif

/* What every fallible entry point returns; the reason goes to the caller's `err` buffer (NUL-terminated, first
 * line of the message only). */
typedef enum cspine_status {
  CSPINE_OK = 0,
  CSPINE_ABSENT = 1,         /* read_extra: the archive has no such file */
  CSPINE_BAD_MODEL_FILE = 2, /* not a TorchScript archive / not a loadable model */
  CSPINE_BAD_DEVICE = 3,     /* the requested device cannot be used (no CUDA, bad index, fp16 on the CPU) */
  CSPINE_MODEL_FAILED = 4,   /* the model (or LibTorch) failed on this input: wrong shape, out of memory, ... */
  CSPINE_CANCELLED = 5       /* the caller's cancel callback returned non-zero between batches */
} cspine_status;

/* One output of a model run, in host memory (C order), as the plugin hands it over. */
typedef struct cspine_tensor {
  void* data;       /* malloc'ed by the plugin; released with cspine_backend_free */
  int64_t shape[8];
  int32_t ndim;
  int32_t dtype;    /* 0: float32, 1: uint8 (an argmax) */
  int64_t channels; /* size of dimension 1 before an argmax (0 for 1-D outputs) */
} cspine_tensor;

/* How output 0 of a segmentation model becomes labels on the device, so that only uint8 values come back:
 * CSPINE_DECODE_ARGMAX: the index of the largest channel (over dimension 1) of the raw outputs;
 * CSPINE_DECODE_SIGMOID: p = sigmoid(output), m = max over channels (the first on ties): the index of m where
 * m > threshold, else CSPINE_NO_LABEL. The caller maps indices to labels (the contract's channel_labels). */
#define CSPINE_NO_LABEL 255
typedef enum cspine_decode_mode { CSPINE_DECODE_ARGMAX = 0, CSPINE_DECODE_SIGMOID = 1 } cspine_decode_mode;
typedef struct cspine_decode {
  int32_t mode; /* cspine_decode_mode */
  double threshold;
} cspine_decode;

/* How a model's input is made from a study's HU volume: the contract's input rules, in one struct, so that a
 * new rule is a new field here rather than a new parameter on every entry point. */
typedef struct cspine_input_rules {
  double hu_low, hu_high;                          /* window: x = clamp((hu - low) / (high - low), 0, 1) */
  int32_t slice_offsets[CSPINE_MAX_SLICE_OFFSETS]; /* channel c of slice k = slice k + offset[c], clamped */
  int32_t n_offsets;                               /* channels */
  int64_t height, width;                           /* model input size */
} cspine_input_rules;

/* A classifier batch to build from a device volume: item i is the square crop boxes[3i..3i+2] = (x, y, side) of
 * the slices indices[i * slices_per_item * rules.n_offsets ...]; side 0 leaves the item zeros. */
typedef struct cspine_crops {
  cspine_input_rules rules;
  const int32_t* boxes;   /* items x 3 */
  const int32_t* indices; /* items x slices_per_item x n_offsets */
  int64_t items, slices_per_item;
} cspine_crops;

int cspine_backend_abi_version(void);
const char* cspine_backend_info(void);
void cspine_backend_free(void* p);
void cspine_backend_set_threads(int threads);

/* The extra file `name` of a TorchScript archive, without loading the model: *data malloc'ed (free with
 * cspine_backend_free). CSPINE_ABSENT when there is no such file, CSPINE_BAD_MODEL_FILE when `path` is no archive. */
cspine_status cspine_backend_read_extra(const char* path, const char* name, char** data, size_t* size, char* err,
                                        size_t err_size);

/* A model on a device ("auto", "cpu", "cuda", "cuda:N"); null with *status CSPINE_BAD_MODEL_FILE or
 * CSPINE_BAD_DEVICE. With exact_numerics, no optimisation that changes results (no batch-norm folding). */
void* cspine_backend_model_load(const char* path, const char* device, int fp16, int exact_numerics,
                                cspine_status* status, char* err, size_t err_size);
const char* cspine_backend_model_device(void* model);
void cspine_backend_model_free(void* model);

/* Runs the model on one float32 host input; every tensor it returns comes back in `outs` (float32, or, with a
 * `decode` (may be null), output 0 as its uint8 labels over dimension 1, see cspine_decode). */
cspine_status cspine_backend_model_forward(void* model, const float* input, const int64_t* shape, int ndim,
                                           const cspine_decode* decode, cspine_tensor* outs, int max_outs, int* n_outs,
                                           char* err, size_t err_size);

/* A study's int16 HU volume (slices x rows x cols) on the model's device: on CUDA a copy through pinned memory,
 * on the CPU a reference (the caller keeps `hu` alive). Null with the reason in `err`. */
void* cspine_backend_volume_upload(void* model, const int16_t* hu, int64_t slices, int64_t rows, int64_t cols,
                                   char* err, size_t err_size);
void cspine_backend_volume_free(void* volume);

/* Segments a whole device volume (input built there by `rules`): slices x height x width labels into `labels`
 * in one transfer, the model's class count in *channels, the forward passes' time in *model_seconds.
 * `cancelled` (may be null) is polled between batches. */
cspine_status cspine_backend_segment_volume(void* model, const void* volume, const cspine_input_rules* rules,
                                            int32_t batch, uint8_t* labels, int64_t* channels, double* model_seconds,
                                            int (*cancelled)(void), char* err, size_t err_size);

/* The crops built on the device, copied to `out` (items x slices_per_item x n_offsets x height x width floats). */
cspine_status cspine_backend_volume_crops(const void* volume, const cspine_crops* crops, float* out, char* err,
                                          size_t err_size);

/* Runs a classifier on crops built on the device (the input never leaves it); outputs as model_forward. */
cspine_status cspine_backend_classify_volume(void* model, const void* volume, const cspine_crops* crops,
                                             cspine_tensor* outs, int max_outs, int* n_outs, double* model_seconds,
                                             char* err, size_t err_size);

#ifdef __cplusplus
}
#endif

#endif /* CSPINE_BACKEND_ABI_H */
