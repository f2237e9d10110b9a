// musiq._native: the Python binding of the engine's Pipeline (the package's
// musiq/__init__.py wraps it). Items arrive already checked and normalised by the Python side: a str path,
// bytes (an encoded file) or a uint8 array (HxW or HxWxC, each row's pixels contiguous).
// Paths and names go to C++ as the file system's bytes (os.fsencode: names that are not
// UTF-8 arrive from Python as surrogate escapes) and messages come back the same way.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <climits>

#include "engine/pipeline.h"  // with engine/musiq.h: musiq::Error

namespace nb = nanobind;
using musiq::ImageSource;
using musiq::Outcome;
using musiq::Pipeline;

namespace {

// Pipeline holds a mutex and cannot move: Python owns it through this.
struct Handle {
  std::unique_ptr<Pipeline> pipeline;
};

using PixelArray = nb::ndarray<const uint8_t, nb::device::cpu>;

// A str as the file system's bytes (os.fsencode).
std::string fs_bytes(nb::handle text) {
  const nb::object encoded = nb::steal(PyUnicode_EncodeFSDefault(text.ptr()));
  if (!encoded.is_valid()) throw nb::python_error();
  return std::string(PyBytes_AS_STRING(encoded.ptr()),
                     static_cast<size_t>(PyBytes_GET_SIZE(encoded.ptr())));
}

// Bytes from the file system (a path, or a message naming one) as a str (os.fsdecode).
nb::str fs_text(const std::string& bytes) {
  PyObject* text = PyUnicode_DecodeFSDefaultAndSize(bytes.data(), Py_ssize_t(bytes.size()));
  if (!text) throw nb::python_error();
  return nb::steal<nb::str>(text);
}

// Needs the GIL; the memory it points into belongs to `item`, which the caller keeps alive.
ImageSource source_of(nb::handle item, const std::string& name) {
  if (nb::isinstance<nb::str>(item)) return ImageSource::file(fs_bytes(item));
  if (nb::isinstance<nb::bytes>(item)) {
    const nb::bytes bytes = nb::borrow<nb::bytes>(item);
    return ImageSource::encoded_bytes(name, reinterpret_cast<const uint8_t*>(bytes.c_str()),
                                      bytes.size());
  }
  PixelArray a;
  if (!nb::try_cast(item, a, /*convert=*/false) || (a.ndim() != 2 && a.ndim() != 3))
    throw nb::type_error("expected a path, bytes, or a 2-D or 3-D uint8 array");
  const int channels = a.ndim() == 3 ? static_cast<int>(a.shape(2)) : 1;
  // An empty array's strides mean nothing, nor a side past INT_MAX's: such an image is
  // refused per image ("no pixels", "too many pixels").
  const bool refused =
      a.size() == 0 || a.shape(0) > size_t{INT_MAX} || a.shape(1) > size_t{INT_MAX};
  if (!refused && (a.stride(1) != channels || (a.ndim() == 3 && a.stride(2) != 1)))
    throw nb::value_error("array rows must be contiguous (numpy.ascontiguousarray)");
  // Sides in 64 bits: the pipeline refuses what is too large instead of a cut-down size.
  return ImageSource::in_memory(name, {a.data(), static_cast<int64_t>(a.shape(1)),
                                       static_cast<int64_t>(a.shape(0)), a.stride(0), channels});
}

// Scores with the GIL released; between packed model calls, takes it back to run Python's
// signal handlers, so that Ctrl-C (KeyboardInterrupt) stops the call within one batch.
std::vector<Outcome> score_items(Handle& handle, const nb::list& items, const nb::list& names,
                                 int threads) {
  if (names.size() != items.size()) throw nb::value_error("one name per item");
  std::vector<ImageSource> sources;
  Pipeline::Run run;
  sources.reserve(names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    sources.push_back(source_of(items[i], fs_bytes(names[i])));
    run.names.push_back(sources.back().name);
  }
  Pipeline& pipeline = *handle.pipeline;
  std::vector<Outcome> outcomes(sources.size());
  run.load = [&](size_t i) { return pipeline.prepare(sources[i]); };
  run.deliver = [&](size_t i, const std::vector<std::optional<Outcome>>& per_model) {
    outcomes[i] = *per_model.front();
  };
  bool interrupted = false;
  run.stop = [&interrupted] {
    const nb::gil_scoped_acquire locked;
    interrupted = PyErr_CheckSignals() != 0;  // a handler raised: its exception is set
    return interrupted;
  };
  run.threads = threads;
  {
    const nb::gil_scoped_release unlocked;
    pipeline.run(run);
  }
  if (interrupted) throw nb::python_error();
  return outcomes;
}

}  // namespace

NB_MODULE(_native, m) {
  m.doc() = "musiq's compiled core; use the musiq package, not this module.";
  nb::exception<musiq::Error>(m, "Error");
  m.attr("MODEL_NAMES") = nb::tuple(nb::cast(musiq::kModelNames));
  m.attr("DEVICE_NAMES") = nb::tuple(nb::cast(musiq::kDeviceNames));
  m.attr("PRECISION_NAMES") = nb::tuple(nb::cast(musiq::kPrecisionNames));

  nb::class_<Outcome>(m, "Result")
      .def_prop_ro("score", [](const Outcome& o) { return o.result.score; })
      .def_prop_ro("width", [](const Outcome& o) { return o.result.width; })
      .def_prop_ro("height", [](const Outcome& o) { return o.result.height; })
      .def_prop_ro("tokens", [](const Outcome& o) { return o.result.tokens; })
      .def_prop_ro("ms", [](const Outcome& o) { return o.result.total_ms(); })
      .def_prop_ro("scored_width", [](const Outcome& o) { return o.result.scored_width; })
      .def_prop_ro("scored_height", [](const Outcome& o) { return o.result.scored_height; })
      .def_prop_ro("error", [](const Outcome& o) { return fs_text(o.error); })
      .def_prop_ro("warning", [](const Outcome& o) { return o.result.warning; });

  nb::class_<Handle>(m, "Scorer")
      .def("__init__",
           [](Handle* self, const std::string& model, const nb::str& weights,
              const std::string& device, int threads, int64_t max_pixels, int64_t max_tokens,
              int target_width, int target_height, bool strict, const std::string& precision) {
             musiq::PipelineParams params;
             params.models = {model.empty() ? "koniq" : model};
             params.weights = fs_bytes(weights);
             params.device = musiq::parse_device_kind(device);
             params.precision = musiq::parse_precision(precision);
             params.threads = threads;
             const musiq::DecodeOptions defaults;  // 0: the default
             params.decode.max_pixels = max_pixels ? max_pixels : defaults.max_pixels;
             params.decode.max_tokens = max_tokens ? max_tokens : defaults.max_tokens;
             params.decode.target = {target_width, target_height};
             params.strict = strict;
             std::unique_ptr<Pipeline> opened;
             {
               const nb::gil_scoped_release unlocked;  // loading takes a while
               opened = Pipeline::open(params);
             }
             new (self) Handle{std::move(opened)};
           },
           nb::arg("model"), nb::arg("weights"), nb::arg("device"), nb::arg("threads"),
           nb::arg("max_pixels"), nb::arg("max_tokens"), nb::arg("target_width"),
           nb::arg("target_height"), nb::arg("strict"), nb::arg("precision"))
      .def("score_many", &score_items, nb::arg("items"), nb::arg("names"), nb::arg("threads"))
      .def_prop_ro("model", [](const Handle& h) { return h.pipeline->label(); })
      .def_prop_ro("variant", [](const Handle& h) { return h.pipeline->model().variant; })
      .def_prop_ro("weights_path",
                   [](const Handle& h) { return fs_text(h.pipeline->model().weights_path); })
      .def_prop_ro("random_weights",
                   [](const Handle& h) { return h.pipeline->model().random_weights; })
      .def_prop_ro("device", [](const Handle& h) { return h.pipeline->device().name; })
      .def_prop_ro("device_note", [](const Handle& h) { return h.pipeline->device_note(); })
      .def_prop_ro("precision",
                   [](const Handle& h) { return musiq::precision_name(h.pipeline->precision()); })
      .def_prop_ro("gpu_available", [](const Handle& h) { return h.pipeline->gpu_available(); });
}
