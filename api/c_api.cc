// The C API (include/musiq/musiq.h) over api::SharedScorer: every C++ exception stops
// here and becomes a return code and this thread's message.
#include "musiq/musiq.h"

#include <cmath>
#include <string>
#include <vector>

#include "api/shared_scorer.h"
#include "engine/musiq.h"  // musiq::Error, describe_exception

#ifndef MUSIQ_VERSION
#define MUSIQ_VERSION "unknown"
#endif

struct musiq_scorer {
  std::unique_ptr<musiq::api::SharedScorer> scorer;
  std::string model, variant, weights_path, device, device_note;
};

namespace {

using musiq::api::Failure;
using musiq::api::Input;
using musiq::api::Outcome;

// Per thread: the last failure's message and the batch results' messages.
thread_local std::string t_message;
thread_local std::vector<std::string> t_result_errors;

int fail(int code, std::string message) {
  t_message = std::move(message);
  return code;
}

int status_of(Failure failure) {
  switch (failure) {
    case Failure::kNone: return MUSIQ_OK;
    case Failure::kImage: return MUSIQ_ERROR_IMAGE;
    case Failure::kOutOfMemory: return MUSIQ_ERROR_OUT_OF_MEMORY;
    case Failure::kInternal:
    case Failure::kStopped: break;  // the C API never asks to stop
  }
  return MUSIQ_ERROR_INTERNAL;
}

// Runs `call`, which returns a code; an exception becomes a code and a message, a
// musiq::Error's code being the call's own `error_code`.
template <class Call>
int guarded(int error_code, Call&& call) noexcept {
  try {
    return call();
  } catch (...) {
    musiq::ErrorReport report = musiq::describe_exception(std::current_exception());
    switch (report.kind) {
      case musiq::ErrorKind::kError: return fail(error_code, std::move(report.message));
      case musiq::ErrorKind::kOutOfMemory:
        return fail(MUSIQ_ERROR_OUT_OF_MEMORY, std::move(report.message));
      case musiq::ErrorKind::kInternal: break;
    }
    return fail(MUSIQ_ERROR_INTERNAL, std::move(report.message));
  }
}

// Fills `result`; `error` must outlive the caller's use (thread-local storage).
void fill_result(const Outcome& o, const std::string* error, musiq_result* result) {
  const musiq::ScoreResult& s = o.result;
  const float score = o.failure == Failure::kNone ? s.score : std::nanf("");
  *result = musiq_result{score,
                         s.width,
                         s.height,
                         s.tokens,
                         s.total_ms(),
                         status_of(o.failure),
                         error ? error->c_str() : nullptr,
                         s.scored_width,
                         s.scored_height};
}

int score_one(musiq_scorer* scorer, const Input& input, musiq_result* result) {
  if (!scorer || !result) return fail(MUSIQ_ERROR_ARGUMENT, "null scorer or result");
  return guarded(MUSIQ_ERROR_IMAGE, [&]() -> int {
    const Outcome o = scorer->scorer->score(input);
    if (o.failure != Failure::kNone) {
      t_message = o.error;
      fill_result(o, &t_message, result);
      return result->status;
    }
    fill_result(o, nullptr, result);
    return MUSIQ_OK;
  });
}

// A batch entry as an input; throws musiq::Error when it is malformed.
Input input_of(const musiq_image& image, size_t index) {
  Input in;
  const std::string where = "image " + std::to_string(index);
  switch (image.kind) {
    case MUSIQ_IMAGE_FILE:
      if (!image.name) throw musiq::Error(where + ": no path");
      in.kind = Input::Kind::kFile;
      in.name = image.name;
      return in;
    case MUSIQ_IMAGE_ENCODED:
      if (!image.data && image.size) throw musiq::Error(where + ": no data");
      in.kind = Input::Kind::kEncoded;
      in.name = image.name ? image.name : "<encoded image>";
      in.encoded = static_cast<const uint8_t*>(image.data);
      in.encoded_size = image.size;
      return in;
    case MUSIQ_IMAGE_RGB8:
      in.kind = Input::Kind::kPixels;
      in.name = image.name ? image.name : "<pixels>";
      in.pixels = {static_cast<const uint8_t*>(image.data), image.width, image.height,
                   image.stride_bytes, image.channels};
      return in;
  }
  throw musiq::Error(where + ": unknown kind " + std::to_string(image.kind));
}

}  // namespace

extern "C" {

const char* musiq_version(void) { return MUSIQ_VERSION; }

musiq_params musiq_default_params(void) {
  const musiq::DecodeOptions decode;
  return musiq_params{"koniq", nullptr, "auto", 2, decode.max_pixels, decode.max_tokens, 0, 0};
}

int musiq_open(const musiq_params* params, musiq_scorer** out) {
  if (out) *out = nullptr;
  if (!params || !out) return fail(MUSIQ_ERROR_ARGUMENT, "null params or scorer pointer");
  return guarded(MUSIQ_ERROR_OPEN, [&]() -> int {
    musiq::api::OpenOptions options;
    options.model = params->model ? params->model : "";
    options.weights = params->weights ? params->weights : "";
    options.device = params->device ? params->device : "auto";
    if (options.device != "auto" && options.device != "cpu" && options.device != "cuda")
      return fail(MUSIQ_ERROR_ARGUMENT,
                  "device \"" + options.device + "\": expected auto, cpu or cuda");
    options.threads = params->threads > 0 ? params->threads : 2;
    options.max_pixels = params->max_pixels;
    options.max_tokens = params->max_tokens;
    options.target = {params->target_width, params->target_height};
    const bool no_target = params->target_width == 0 && params->target_height == 0;
    if (!no_target && (params->target_width < 1 || params->target_height < 1))
      return fail(MUSIQ_ERROR_ARGUMENT, "target size " + std::to_string(params->target_width) +
                                            "x" + std::to_string(params->target_height) +
                                            ": both sides at least 1, or both 0 for none");
    auto handle = std::make_unique<musiq_scorer>();
    handle->scorer = musiq::api::SharedScorer::open(options);
    const musiq::Scorer& engine = handle->scorer->engine();
    handle->model = handle->scorer->model_label();
    handle->variant = engine.model().variant;
    handle->weights_path = engine.model().weights_path;
    handle->device = engine.device().name;
    handle->device_note = handle->scorer->device_note();
    *out = handle.release();
    return MUSIQ_OK;
  });
}

int musiq_get_info(const musiq_scorer* s, musiq_info* info) {
  if (!s || !info) return fail(MUSIQ_ERROR_ARGUMENT, "null scorer or info");
  *info = musiq_info{s->model.c_str(),  s->variant.c_str(),     s->weights_path.c_str(),
                     s->device.c_str(), s->device_note.c_str(),
                     s->scorer->engine().model().random_weights ? 1 : 0,
                     s->scorer->gpu_available() ? 1 : 0};
  return MUSIQ_OK;
}

int musiq_score_file(musiq_scorer* scorer, const char* path, musiq_result* result) {
  if (!path) return fail(MUSIQ_ERROR_ARGUMENT, "null path");
  return guarded(MUSIQ_ERROR_IMAGE, [&]() -> int {
    Input in;
    in.name = path;
    return score_one(scorer, in, result);
  });
}

int musiq_score_encoded(musiq_scorer* scorer, const void* bytes, size_t size,
                        musiq_result* result) {
  if (!bytes && size) return fail(MUSIQ_ERROR_ARGUMENT, "null bytes");
  return guarded(MUSIQ_ERROR_IMAGE, [&]() -> int {
    musiq_image image{MUSIQ_IMAGE_ENCODED, nullptr, bytes, size, 0, 0, 0, 0};
    return score_one(scorer, input_of(image, 0), result);
  });
}

int musiq_score_rgb8(musiq_scorer* scorer, const uint8_t* pixels, int width, int height,
                     int stride_bytes, int channels, musiq_result* result) {
  return guarded(MUSIQ_ERROR_IMAGE, [&]() -> int {
    musiq_image image{MUSIQ_IMAGE_RGB8, nullptr, pixels, 0, width, height, stride_bytes,
                      channels};
    return score_one(scorer, input_of(image, 0), result);
  });
}

int musiq_score_batch(musiq_scorer* scorer, const musiq_image* images, size_t count,
                      musiq_result* results) {
  if (!scorer || (count && (!images || !results)))
    return fail(MUSIQ_ERROR_ARGUMENT, "null scorer, images or results");
  return guarded(MUSIQ_ERROR_ARGUMENT, [&]() -> int {
    std::vector<Input> inputs;
    inputs.reserve(count);
    for (size_t i = 0; i < count; ++i) inputs.push_back(input_of(images[i], i));
    const std::vector<Outcome> outcomes = scorer->scorer->score_many(inputs, 0);
    t_result_errors.assign(count, std::string());
    size_t failed = 0;
    const std::string* first = nullptr;
    for (size_t i = 0; i < count; ++i) {
      const bool ok = outcomes[i].failure == Failure::kNone;
      if (!ok) {
        t_result_errors[i] = outcomes[i].error;
        if (!failed++) first = &t_result_errors[i];
      }
      fill_result(outcomes[i], ok ? nullptr : &t_result_errors[i], &results[i]);
    }
    if (!failed) return MUSIQ_OK;
    return fail(MUSIQ_ERROR_IMAGE, std::to_string(failed) + " of " + std::to_string(count) +
                                       " images failed; the first: " + *first);
  });
}

const char* musiq_error_message(void) { return t_message.c_str(); }

void musiq_close(musiq_scorer* scorer) { delete scorer; }

}  // extern "C"
