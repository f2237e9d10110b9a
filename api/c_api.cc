// The C API (include/musiq/musiq.h) over the engine's Pipeline: every C++ exception stops
// here and becomes a return code and this thread's message.
#include "musiq/musiq.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "engine/pipeline.h"  // with engine/musiq.h: musiq::Error, describe_exception

#ifndef MUSIQ_VERSION
#define MUSIQ_VERSION "unknown"
#endif

struct musiq_scorer {
  std::unique_ptr<musiq::Pipeline> pipeline;
  // For musiq_get_info: valid until musiq_close.
  std::string model, variant, weights_path, device, device_note;
};

namespace {

using musiq::Failure;
using musiq::ImageSource;
using musiq::Outcome;

// Per thread: the last failure's message, and the results' messages and warnings.
thread_local std::string t_message;
thread_local std::vector<std::string> t_result_errors, t_result_warnings;

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
    case Failure::kStopped: break;  // the C API never stops a run
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

// Fills `result` with `o`, whose message and warning are kept in this thread's storage
// for slot `index` until its next call.
void fill_result(const Outcome& o, size_t index, musiq_result* result) {
  const musiq::ScoreResult& s = o.result;
  t_result_errors[index] = o.error;
  t_result_warnings[index] = o.ok() ? s.warning : "";
  const std::string& error = t_result_errors[index];
  const std::string& warning = t_result_warnings[index];
  *result = musiq_result{o.ok() ? s.score : std::nanf(""),
                         s.width,
                         s.height,
                         s.tokens,
                         s.total_ms(),
                         status_of(o.failure),
                         error.empty() ? nullptr : error.c_str(),
                         s.scored_width,
                         s.scored_height,
                         warning.empty() ? nullptr : warning.c_str()};
}

int score_one(musiq_scorer* scorer, const ImageSource& source, musiq_result* result) {
  if (!scorer || !result) return fail(MUSIQ_ERROR_ARGUMENT, "null scorer or result");
  return guarded(MUSIQ_ERROR_IMAGE, [&]() -> int {
    const Outcome o = scorer->pipeline->score(source);
    t_result_errors.assign(1, "");
    t_result_warnings.assign(1, "");
    fill_result(o, 0, result);
    if (!o.ok()) t_message = o.error;
    return result->status;
  });
}

// A limit as callers give it: 0 means the default; below 0 is refused.
int64_t limit_or_default(int64_t value, int64_t default_value, const char* what) {
  if (value < 0) throw musiq::Error(std::string(what) + " must be positive, or 0 for the default (" +
                                    std::to_string(value) + " given)");
  return value == 0 ? default_value : value;
}

// A batch entry as an image source; throws musiq::Error when it is malformed.
ImageSource source_of(const musiq_image& image, size_t index) {
  const std::string where = "image " + std::to_string(index);
  switch (image.kind) {
    case MUSIQ_IMAGE_FILE:
      if (!image.name) throw musiq::Error(where + ": no path");
      return ImageSource::file(image.name);
    case MUSIQ_IMAGE_ENCODED:
      if (!image.data && image.size) throw musiq::Error(where + ": no data");
      return ImageSource::encoded_bytes(image.name ? image.name : "<encoded image>",
                                        static_cast<const uint8_t*>(image.data), image.size);
    case MUSIQ_IMAGE_RGB8:
      return ImageSource::in_memory(
          image.name ? image.name : "<pixels>",
          {static_cast<const uint8_t*>(image.data), image.width, image.height,
           image.stride_bytes, image.channels});
  }
  throw musiq::Error(where + ": unknown kind " + std::to_string(image.kind));
}

}  // namespace

extern "C" {

const char* musiq_version(void) { return MUSIQ_VERSION; }

musiq_params musiq_default_params(void) {
  const musiq::DecodeOptions decode;
  return musiq_params{"koniq", nullptr, "auto", 2, decode.max_pixels, decode.max_tokens, 0, 0, 0,
                      "fp32"};
}

int musiq_open(const musiq_params* params, musiq_scorer** out) {
  if (out) *out = nullptr;
  if (!params || !out) return fail(MUSIQ_ERROR_ARGUMENT, "null params or scorer pointer");
  return guarded(MUSIQ_ERROR_OPEN, [&]() -> int {
    musiq::PipelineParams options;
    options.models = {params->model ? params->model : "koniq"};
    options.weights = params->weights ? params->weights : "";
    const std::string device = params->device ? params->device : "auto";
    const std::vector<std::string>& names = musiq::kDeviceNames;
    if (std::find(names.begin(), names.end(), device) == names.end())
      return fail(MUSIQ_ERROR_ARGUMENT,
                  "device \"" + device + "\": expected " + musiq::alternatives(names));
    options.device = musiq::parse_device_kind(device);
    const std::string precision = params->precision ? params->precision : "fp32";
    const std::vector<std::string>& precisions = musiq::kPrecisionNames;
    if (std::find(precisions.begin(), precisions.end(), precision) == precisions.end())
      return fail(MUSIQ_ERROR_ARGUMENT, "precision \"" + precision + "\": expected " +
                                            musiq::alternatives(precisions));
    options.precision = musiq::parse_precision(precision);
    options.threads = params->threads > 0 ? params->threads : 2;
    const musiq::DecodeOptions defaults;
    options.decode.max_pixels = limit_or_default(params->max_pixels, defaults.max_pixels, "max_pixels");
    options.decode.max_tokens = limit_or_default(params->max_tokens, defaults.max_tokens, "max_tokens");
    options.decode.target = {params->target_width, params->target_height};
    const bool no_target = params->target_width == 0 && params->target_height == 0;
    if (!no_target && (params->target_width < 1 || params->target_height < 1))
      return fail(MUSIQ_ERROR_ARGUMENT, "target size " + std::to_string(params->target_width) +
                                            "x" + std::to_string(params->target_height) +
                                            ": both sides at least 1, or both 0 for none");
    options.strict = params->strict != 0;
    auto handle = std::make_unique<musiq_scorer>();
    handle->pipeline = musiq::Pipeline::open(options);
    const musiq::Pipeline& pipeline = *handle->pipeline;
    handle->model = pipeline.label();
    handle->variant = pipeline.model().variant;
    handle->weights_path = pipeline.model().weights_path;
    handle->device = pipeline.device().name;
    handle->device_note = pipeline.device_note();
    *out = handle.release();
    return MUSIQ_OK;
  });
}

int musiq_get_info(const musiq_scorer* s, musiq_info* info) {
  if (!s || !info) return fail(MUSIQ_ERROR_ARGUMENT, "null scorer or info");
  *info = musiq_info{s->model.c_str(),  s->variant.c_str(),     s->weights_path.c_str(),
                     s->device.c_str(), s->device_note.c_str(),
                     s->pipeline->model().random_weights ? 1 : 0,
                     s->pipeline->gpu_available() ? 1 : 0,
                     musiq::precision_name(s->pipeline->precision()).c_str()};
  return MUSIQ_OK;
}

int musiq_score_file(musiq_scorer* scorer, const char* path, musiq_result* result) {
  if (!path) return fail(MUSIQ_ERROR_ARGUMENT, "null path");
  return guarded(MUSIQ_ERROR_IMAGE, [&]() -> int {
    return score_one(scorer, ImageSource::file(path), result);
  });
}

int musiq_score_encoded(musiq_scorer* scorer, const void* bytes, size_t size,
                        musiq_result* result) {
  if (!bytes && size) return fail(MUSIQ_ERROR_ARGUMENT, "null bytes");
  return guarded(MUSIQ_ERROR_IMAGE, [&]() -> int {
    musiq_image image{MUSIQ_IMAGE_ENCODED, nullptr, bytes, size, 0, 0, 0, 0};
    return score_one(scorer, source_of(image, 0), result);
  });
}

int musiq_score_rgb8(musiq_scorer* scorer, const uint8_t* pixels, int width, int height,
                     int stride_bytes, int channels, musiq_result* result) {
  return guarded(MUSIQ_ERROR_IMAGE, [&]() -> int {
    musiq_image image{MUSIQ_IMAGE_RGB8, nullptr, pixels, 0, width, height, stride_bytes,
                      channels};
    return score_one(scorer, source_of(image, 0), result);
  });
}

int musiq_score_batch(musiq_scorer* scorer, const musiq_image* images, size_t count,
                      musiq_result* results) {
  if (!scorer || (count && (!images || !results)))
    return fail(MUSIQ_ERROR_ARGUMENT, "null scorer, images or results");
  return guarded(MUSIQ_ERROR_ARGUMENT, [&]() -> int {
    musiq::Pipeline::Run run;
    std::vector<ImageSource> sources;
    sources.reserve(count);
    for (size_t i = 0; i < count; ++i) {
      sources.push_back(source_of(images[i], i));
      run.names.push_back(sources.back().name);
    }
    std::vector<Outcome> outcomes(count);
    run.load = [&](size_t i) { return scorer->pipeline->prepare(sources[i]); };
    run.deliver = [&](size_t i, const std::vector<std::optional<Outcome>>& per_model) {
      outcomes[i] = *per_model.front();
    };
    scorer->pipeline->run(run);
    t_result_errors.assign(count, "");
    t_result_warnings.assign(count, "");
    size_t failed = 0;
    for (size_t i = 0; i < count; ++i) {
      fill_result(outcomes[i], i, &results[i]);
      if (!outcomes[i].ok() && !failed++) t_message = outcomes[i].error;
    }
    if (!failed) return MUSIQ_OK;
    return fail(MUSIQ_ERROR_IMAGE, std::to_string(failed) + " of " + std::to_string(count) +
                                       " images failed; the first: " + t_message);
  });
}

const char* musiq_error_message(void) { return t_message.c_str(); }

void musiq_close(musiq_scorer* scorer) { delete scorer; }

}  // extern "C"
