/* A C11 program using only the installed <musiq/musiq.h> and libmusiq: scores the images
 * named on the command line every way the C API offers and prints one JSON line per file
 * ({"path": ..., "score": ...} or {"path": ..., "error": ...}) for the test to compare with
 * the CLI. Exits non-zero when the API disagrees with itself (file vs. bytes, batch vs.
 * single calls, gray vs. RGB vs. RGBA pixels, padded rows) or mishandles bad arguments.
 *
 *   musiq_c_check WEIGHTS.h5 IMAGE...
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <musiq/musiq.h>

static int failures = 0;

static void check(int ok, const char* what) {
  if (!ok) {
    fprintf(stderr, "musiq_c_check: FAILED: %s (last message: %s)\n", what,
            musiq_error_message());
    ++failures;
  }
}

static unsigned char* read_file(const char* path, size_t* size) {
  FILE* f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char* data = malloc(n > 0 ? (size_t)n : 1);
  *size = data ? fread(data, 1, (size_t)n, f) : 0;
  fclose(f);
  return data;
}

/* The same synthetic picture as gray, RGB, RGBA and RGB with padded rows: one score. */
static void check_pixel_layouts(musiq_scorer* scorer) {
  enum { W = 77, H = 50, PAD = 13 };
  static unsigned char gray[H * W], rgb[H * W * 3], rgba[H * W * 4], padded[H * (W * 3 + PAD)];
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      const unsigned char v = (unsigned char)((x * 7 + y * 13 + (x * y) % 31) & 0xFF);
      gray[y * W + x] = v;
      for (int c = 0; c < 3; ++c) {
        rgb[(y * W + x) * 3 + c] = v;
        padded[y * (W * 3 + PAD) + x * 3 + c] = v;
      }
      memcpy(&rgba[(y * W + x) * 4], &rgb[(y * W + x) * 3], 3);
      rgba[(y * W + x) * 4 + 3] = (unsigned char)(255 - v); /* alpha: dropped */
    }
  musiq_result g, c3, c4, p;
  check(musiq_score_rgb8(scorer, gray, W, H, W, 1, &g) == MUSIQ_OK, "gray pixels");
  check(musiq_score_rgb8(scorer, rgb, W, H, W * 3, 3, &c3) == MUSIQ_OK, "RGB pixels");
  check(musiq_score_rgb8(scorer, rgba, W, H, W * 4, 4, &c4) == MUSIQ_OK, "RGBA pixels");
  check(musiq_score_rgb8(scorer, padded, W, H, W * 3 + PAD, 3, &p) == MUSIQ_OK, "padded rows");
  check(g.score == c3.score && c3.score == c4.score && c4.score == p.score,
        "gray, RGB, RGBA and padded rows score the same");
  check(c3.width == W && c3.height == H && c3.tokens > 1, "pixel result size and tokens");
  check(musiq_score_rgb8(scorer, rgb, W, H, W * 3, 2, &p) == MUSIQ_ERROR_IMAGE &&
            strstr(musiq_error_message(), "channels") != NULL,
        "2 channels refused with a message");
  check(musiq_score_rgb8(scorer, rgb, W, H, W * 3 - 1, 3, &p) == MUSIQ_ERROR_IMAGE &&
            strstr(musiq_error_message(), "stride") != NULL,
        "a short row stride refused with a message");
}

/* A target size (the CLI's --target-size 64 48): prints the score for the test to compare
 * with the CLI's, and checks the sizes the result reports. */
static void score_at_target_size(const char* weights, const char* path) {
  musiq_params params = musiq_default_params();
  params.weights = weights;
  params.device = "cpu";
  params.target_width = 64;
  params.target_height = 48;
  musiq_scorer* scorer = NULL;
  musiq_result r;
  check(musiq_open(&params, &scorer) == MUSIQ_OK, "open with a target size");
  if (!scorer) return;
  if (musiq_score_file(scorer, path, &r) == MUSIQ_OK) {
    printf("{\"target_size_of\": \"%s\", \"score\": %.9g, \"scored_width\": %d, "
           "\"scored_height\": %d, \"width\": %d, \"height\": %d}\n",
           path, r.score, r.scored_width, r.scored_height, r.width, r.height);
    check(r.scored_width == 64 && r.scored_height == 48, "scored at the target size");
  } else {
    check(0, "score a file at a target size");
  }
  musiq_close(scorer);
}

static void check_bad_arguments(const char* weights) {
  musiq_params params = musiq_default_params();
  static int not_a_scorer;
  musiq_scorer* scorer = (musiq_scorer*)(void*)&not_a_scorer; /* must be reset to NULL */
  params.weights = weights;
  params.device = "tpu";
  check(musiq_open(&params, &scorer) == MUSIQ_ERROR_ARGUMENT && scorer == NULL &&
            strstr(musiq_error_message(), "tpu") != NULL,
        "an unknown device is refused");
  params.device = "cpu";
  params.weights = "/nonexistent/weights.h5";
  check(musiq_open(&params, &scorer) == MUSIQ_ERROR_OPEN &&
            strstr(musiq_error_message(), "/nonexistent/weights.h5") != NULL,
        "missing weights name the file");
  params.weights = weights;
  params.target_width = 64;
  params.target_height = 0;
  check(musiq_open(&params, &scorer) == MUSIQ_ERROR_ARGUMENT && scorer == NULL &&
            strstr(musiq_error_message(), "target size 64x0") != NULL,
        "a target size with a side of 0 is refused");
  check(musiq_open(NULL, &scorer) == MUSIQ_ERROR_ARGUMENT, "null params");
  check(musiq_score_file(NULL, "x.jpg", NULL) == MUSIQ_ERROR_ARGUMENT, "null scorer");
  musiq_close(NULL);
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: musiq_c_check WEIGHTS.h5 IMAGE...\n");
    return 2;
  }
  printf("{\"version\": \"%s\"}\n", musiq_version());
  musiq_params params = musiq_default_params();
  params.weights = argv[1];
  params.device = "cpu";
  musiq_scorer* scorer = NULL;
  if (musiq_open(&params, &scorer) != MUSIQ_OK) {
    fprintf(stderr, "musiq_c_check: %s\n", musiq_error_message());
    return 1;
  }
  musiq_info info;
  check(musiq_get_info(scorer, &info) == MUSIQ_OK && strcmp(info.device, "cpu") == 0 &&
            info.random_weights == 1 && (info.gpu_available == 0 || info.gpu_available == 1),
        "info: cpu, random weights, gpu_available 0 or 1");

  const int n = argc - 2;
  musiq_image* batch = calloc((size_t)n, sizeof *batch);
  musiq_result* batch_results = calloc((size_t)n, sizeof *batch_results);
  float* single = calloc((size_t)n, sizeof *single);
  int* single_status = calloc((size_t)n, sizeof *single_status);
  int any_failed = 0;
  for (int i = 0; i < n; ++i) {
    const char* path = argv[i + 2];
    musiq_result r;
    single_status[i] = musiq_score_file(scorer, path, &r);
    single[i] = r.score;
    if (single_status[i] == MUSIQ_OK) {
      check(r.scored_width == r.width && r.scored_height == r.height,
            "without a target size, scored at the decoded size");
      printf("{\"path\": \"%s\", \"score\": %.9g, \"width\": %d, \"height\": %d, "
             "\"tokens\": %lld}\n",
             path, r.score, r.width, r.height, (long long)r.tokens);
      size_t size = 0;
      unsigned char* bytes = read_file(path, &size);
      musiq_result e;
      check(bytes && musiq_score_encoded(scorer, bytes, size, &e) == MUSIQ_OK &&
                e.score == r.score && e.tokens == r.tokens,
            "bytes score as the file");
      free(bytes);
    } else {
      any_failed = 1;
      check(single_status[i] == MUSIQ_ERROR_IMAGE && r.error &&
                strcmp(r.error, musiq_error_message()) == 0 && isnan(r.score),
            "a bad image: MUSIQ_ERROR_IMAGE with its message");
      printf("{\"path\": \"%s\", \"error\": \"%s\"}\n", path, musiq_error_message());
    }
    batch[i].kind = MUSIQ_IMAGE_FILE;
    batch[i].name = path;
  }
  const int batch_status = musiq_score_batch(scorer, batch, (size_t)n, batch_results);
  check(batch_status == (any_failed ? MUSIQ_ERROR_IMAGE : MUSIQ_OK), "batch status");
  for (int i = 0; i < n; ++i) {
    check(batch_results[i].status == single_status[i], "batch item status as single");
    if (single_status[i] == MUSIQ_OK)
      check(batch_results[i].score == single[i] && batch_results[i].error == NULL,
            "batch score as single");
    else
      check(batch_results[i].error && strstr(batch_results[i].error, argv[i + 2]),
            "batch error names the file");
  }
  check_pixel_layouts(scorer);
  musiq_close(scorer);
  score_at_target_size(argv[1], argv[2]);
  check_bad_arguments(argv[1]);
  free(batch);
  free(batch_results);
  free(single);
  free(single_status);
  return failures ? 1 : 0;
}
