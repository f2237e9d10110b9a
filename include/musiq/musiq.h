/* musiq: MUSIQ image quality scores (Google's multi-scale image quality transformer).
 * The C API of libmusiq. Compiles as C (C99 or later) and as C++.
 *
 *   musiq_params params = musiq_default_params();
 *   params.model = "koniq";
 *   musiq_scorer* scorer;
 *   if (musiq_open(&params, &scorer) != MUSIQ_OK) { puts(musiq_error_message()); return 1; }
 *   musiq_result r;
 *   if (musiq_score_file(scorer, "photo.jpg", &r) == MUSIQ_OK) printf("%.3f\n", r.score);
 *   else puts(musiq_error_message());
 *   musiq_close(scorer);
 *
 * Errors: every function that can fail returns MUSIQ_OK or an error code, and
 * musiq_error_message() gives the one-line message (the same as the CLI prints, e.g.
 * "photo.jpg: invalid JPEG (...)"). Nothing is thrown and nothing aborts across this API.
 *
 * Threads: a scorer may be shared by any number of threads, which may call it at the same
 * time. Each call decodes and preprocesses its images on the calling thread (or, in
 * musiq_score_batch, on worker threads), in parallel; the model itself runs one image at
 * a time per scorer (an internal mutex), since it already uses every core (OpenMP; set
 * OMP_NUM_THREADS) or the GPU. Messages are per thread. musiq_close must not race with
 * calls on the same scorer.
 *
 * ABI: the structs below are part of the ABI; a change to any of them changes the
 * library's SONAME (libmusiq.so.MUSIQ_ABI_VERSION). */
#ifndef MUSIQ_MUSIQ_H_
#define MUSIQ_MUSIQ_H_

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define MUSIQ_API __attribute__((visibility("default")))
#else
#define MUSIQ_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define MUSIQ_ABI_VERSION 3

/* Return codes. */
enum {
  MUSIQ_OK = 0,
  MUSIQ_ERROR_ARGUMENT = 1,      /* a null pointer, an unknown device or image kind */
  MUSIQ_ERROR_OPEN = 2,          /* weights missing or invalid, or the device unusable */
  MUSIQ_ERROR_IMAGE = 3,         /* an image could not be read, decoded or scored */
  MUSIQ_ERROR_OUT_OF_MEMORY = 4,
  MUSIQ_ERROR_INTERNAL = 5       /* a bug: please report the message */
};

typedef struct musiq_scorer musiq_scorer;

typedef struct musiq_params {
  /* A model name as the CLI resolves it ("spaq", "koniq", "paq2piq", "ava": looked for in
   * $MUSIQ_WEIGHTS_DIR, then ${XDG_CACHE_HOME:-~/.cache}/musiq/). NULL: "koniq". */
  const char* model;
  /* A weights file (.h5, see the README); overrides the lookup by name. NULL: none. */
  const char* weights;
  /* "auto" (the GPU when usable and it passes its self-check, else the CPU; a GPU that
   * fails part way is given up for the CPU), "cpu" or "cuda". NULL: "auto". */
  const char* device;
  /* Worker threads that decode and preprocess ahead of the model in musiq_score_batch
   * (as the CLI's --threads). <= 0: 2. */
  int threads;
  /* Refuse images with more pixels than this (from the header, before decoding).
   * 0: the default (134,217,728); below 0: musiq_open fails with MUSIQ_ERROR_OPEN. */
  int64_t max_pixels;
  /* Refuse images whose model input would be longer than this many tokens (the cost
   * budget, as the CLI's --max-tokens; default 50,000: a 50 MP photo still scores).
   * 0: the default; below 0: musiq_open fails with MUSIQ_ERROR_OPEN. */
  int64_t max_tokens;
  /* Both >= 1: every image is resized to target_width x target_height before scoring, as
   * the CLI's --target-size (TensorFlow's bilinear resize with antialiasing, rounded to
   * 8 bits; MUSIQ is made for native resolution: see the README). Both 0: each image is
   * scored at its own size (the default). Anything else fails musiq_open. */
  int target_width;
  int target_height;
  /* Nonzero: an image the decoder warns about (corrupt data it would fill in, as the
   * result's `warning` says) fails with MUSIQ_ERROR_IMAGE instead of scoring (the CLI's
   * --strict). 0: it scores, with the warning (the default). */
  int strict;
  /* "fp32" (exact, as the official model computes; the default), "bf16" (bfloat16
   * products with float32 sums, CPU or GPU; docs/precision.md states its error) or "tf32"
   * (GPU only). A precision the device cannot compute fails musiq_open. NULL: "fp32". */
  const char* precision;
} musiq_params;

typedef struct musiq_result {
  float score;    /* the model's score (mean opinion score; AVA: mean of 10 buckets);
                   * NaN when the image failed */
  int width;      /* the image as decoded */
  int height;
  int64_t tokens; /* sequence length the model ran on, CLS included */
  double ms;      /* decode, preprocessing and model for this image */
  int status;     /* MUSIQ_OK, or why this image failed */
  /* NULL, or this image's one-line message; valid until this thread's next musiq call. */
  const char* error;
  int scored_width; /* the size the model scored: width x height, or the target size */
  int scored_height;
  /* NULL, or the decoder's warning about a scored image (e.g. a truncated JPEG whose
   * missing part was filled in); valid as `error` is. */
  const char* warning;
} musiq_result;

/* One image of a batch. */
enum { MUSIQ_IMAGE_FILE = 0, MUSIQ_IMAGE_ENCODED = 1, MUSIQ_IMAGE_RGB8 = 2 };
typedef struct musiq_image {
  int kind;          /* MUSIQ_IMAGE_* */
  const char* name;  /* FILE: the path. Otherwise what messages call the image (NULL:
                      * "<encoded image>" or "<pixels>"). */
  const void* data;  /* ENCODED: the file's bytes; RGB8: the first pixel */
  size_t size;       /* ENCODED: bytes at data */
  int width, height, stride_bytes, channels; /* RGB8, as for musiq_score_rgb8 */
} musiq_image;

typedef struct musiq_info {
  const char* model;        /* the model name given, or the weights file's variant */
  const char* variant;      /* spaq, koniq, paq2piq, ava, or random (test weights) */
  const char* weights_path;
  const char* device;       /* "cpu" or "cuda", as opened */
  const char* device_note;  /* why "auto" did not use a GPU that is present, else "" */
  int random_weights;       /* 1: random test weights; scores are not meaningful */
  int gpu_available;        /* 1: a usable GPU was found (whichever device scores) */
  const char* precision;    /* "fp32", "bf16" or "tf32": the arithmetic that scores */
} musiq_info;

/* "0.1.0" */
MUSIQ_API const char* musiq_version(void);

/* Defaults: model "koniq", device "auto", 2 threads, 134,217,728 pixels at most, no target
 * size, not strict, precision "fp32". */
MUSIQ_API musiq_params musiq_default_params(void);

/* Loads the weights and picks the device. On failure *scorer is NULL. */
MUSIQ_API int musiq_open(const musiq_params* params, musiq_scorer** scorer);

/* Strings valid until musiq_close. */
MUSIQ_API int musiq_get_info(const musiq_scorer* scorer, musiq_info* info);

/* JPEG (decoded as TensorFlow decodes it), PNG, BMP, TGA, GIF, PNM, PSD. */
MUSIQ_API int musiq_score_file(musiq_scorer* scorer, const char* path, musiq_result* result);

/* An encoded file in memory: exactly the pixels, and score, of the same file on disk. */
MUSIQ_API int musiq_score_encoded(musiq_scorer* scorer, const void* bytes, size_t size,
                                  musiq_result* result);

/* 8-bit pixels, rows top to bottom, stride_bytes apart (>= width * channels); channels 1
 * (gray, replicated to RGB), 3 (RGB) or 4 (RGBA, alpha dropped). */
MUSIQ_API int musiq_score_rgb8(musiq_scorer* scorer, const uint8_t* pixels, int width,
                               int height, int stride_bytes, int channels,
                               musiq_result* result);

/* count images, each result in results[i] (its status and error say whether it scored).
 * Returns MUSIQ_OK when every image scored, MUSIQ_ERROR_IMAGE when some did not (the others
 * are still scored; musiq_error_message() names how many and the first), or another code
 * when the call itself is invalid. */
MUSIQ_API int musiq_score_batch(musiq_scorer* scorer, const musiq_image* images, size_t count,
                                musiq_result* results);

/* The message of the last call that failed on this thread ("" if none). */
MUSIQ_API const char* musiq_error_message(void);

/* NULL is allowed. Closing a scorer twice, or using it after musiq_close, is undefined
 * behaviour (as free() twice): set the pointer to NULL after closing it. */
MUSIQ_API void musiq_close(musiq_scorer* scorer);

#ifdef __cplusplus
}
#endif

#endif /* MUSIQ_MUSIQ_H_ */
