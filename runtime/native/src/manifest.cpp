#include "manifest.hpp"

#include <sys/stat.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "error.hpp"
#include "log.hpp"
#include "sha256.hpp"

namespace srt {

namespace {

bool is_dir(const std::string &p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool is_file(const std::string &p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool ends_with(const std::string &s, const std::string &tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

std::string dirname(const std::string &p) {
  size_t slash = p.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : p.substr(0, slash);
}

[[noreturn]] void bad(const std::string &where, const std::string &what) { fail(SRT_ERROR_MANIFEST, where + ": " + what); }

std::vector<int64_t> shape_of(const Json &j, const std::string &where) {
  if (!j.is_array()) bad(where, "shape must be a list of integers");
  std::vector<int64_t> shape;
  for (const Json &d : j.elements()) {
    long long v = d.integer();
    if (v <= 0) bad(where, "shape dimensions must be positive (a fixed-size engine)");
    shape.push_back(v);
  }
  return shape;
}

std::vector<ClassSpec> classes_of(const Json &root, const std::string &where) {
  const Json &list = root.at("classes");
  if (!list.is_array()) bad(where, "'classes' must be a list");
  std::vector<ClassSpec> out;
  for (const Json &c : list.elements()) {
    if (!c.is_object() || !c.has("id") || !c.has("name") || !c.has("color"))
      bad(where, "each class needs id, name and color");
    ClassSpec cls;
    cls.id = static_cast<int>(c.at("id").integer());
    cls.name = c.at("name").string();
    const Json &color = c.at("color");
    if (!color.is_array() || color.size() != 3) bad(where, "class color must be [R, G, B]");
    for (int i = 0; i < 3; ++i) {
      long long v = color[i].integer();
      if (v < 0 || v > 255) bad(where, "class color components must be 0..255");
      cls.color[i] = static_cast<uint8_t>(v);
    }
    out.push_back(cls);
  }
  return out;
}

InputSpec input_of(const Json &root, const std::string &where) {
  const Json &in = root.at("input");
  if (!in.is_object()) bad(where, "'input' must be an object");
  InputSpec spec;
  if (const Json *kind = in.get("kind")) spec.kind = kind->string();
  if (spec.kind != "frame" && spec.kind != "features") bad(where, "input kind '" + spec.kind + "' not one of frame, features");
  for (const char *key : {"name", "shape", "dtype", "layout"})
    if (!in.has(key)) bad(where, std::string("input without '") + key + "'");
  spec.name = in.at("name").string();
  if (spec.name.empty()) bad(where, "input name must be a non-empty string");
  spec.shape = shape_of(in.at("shape"), where);
  if (spec.shape.size() != 4) bad(where, "input shape must be 4-D");
  spec.dtype = parse_dtype(in.at("dtype").string(), where);
  const std::string &layout = in.at("layout").string();
  if (layout != "NHWC" && layout != "NCHW") bad(where, "input layout '" + layout + "' not one of NHWC, NCHW");
  spec.nchw = layout == "NCHW";
  spec.height = static_cast<int>(spec.nchw ? spec.shape[2] : spec.shape[1]);
  spec.width = static_cast<int>(spec.nchw ? spec.shape[3] : spec.shape[2]);
  if (spec.kind == "features") return spec;
  for (const char *key : {"color_order", "normalization"})
    if (!in.has(key)) bad(where, std::string("input without '") + key + "'");
  const std::string &order = in.at("color_order").string();
  if (order != "BGR" && order != "RGB") bad(where, "colour order '" + order + "' not one of BGR, RGB");
  spec.rgb = order == "RGB";
  if (spec.shape[0] < 1 || spec.shape[0] > SRT_MAX_BATCH || (spec.nchw ? spec.shape[1] : spec.shape[3]) != 3)
    bad(where, "a frame input must have 3 channels and a batch of 1 to " + std::to_string(SRT_MAX_BATCH));
  const Json &norm = in.at("normalization");
  for (const char *key : {"in_graph", "scale", "mean", "std"})
    if (!norm.has(key)) bad(where, std::string("input normalization without '") + key + "'");
  spec.in_graph = norm.at("in_graph").boolean();
  if (!spec.in_graph) {
    const Json &mean = norm.at("mean"), &std = norm.at("std");
    if (!mean.is_array() || mean.size() != 3 || !std.is_array() || std.size() != 3)
      bad(where, "input normalization mean and std must have 3 values");
    float m[3], s[3];
    for (int c = 0; c < 3; ++c) m[c] = static_cast<float>(mean[c].number()), s[c] = static_cast<float>(std[c].number());
    if (!fold_normalization(static_cast<float>(norm.at("scale").number()), m, s, spec.mul, spec.add))
      bad(where, "input normalization std must not be 0");
  }
  std::string resize = "stretch";
  if (const Json *r = in.get("resize")) resize = r->string();
  if (resize == "stretch") spec.resize = Resize::Stretch;
  else if (resize == "letterbox") spec.resize = Resize::Letterbox;
  else if (resize == "crop") spec.resize = Resize::Crop;
  else bad(where, "unknown resize mode '" + resize + "'; use one of stretch, letterbox, crop");
  return spec;
}

void check_schema(const Json &root, const std::string &where) {
  if (!root.is_object()) bad(where, "not a JSON object");
  const Json *version = root.get("schema_version");
  bool ok = version && version->is_number() && version->number() == kSchemaVersion;
  if (!ok) {
    std::string found = !version ? "None" : (version->is_number() ? std::to_string(version->number()) : "not a number");
    if (version && version->is_number() && std::floor(version->number()) == version->number())
      found = std::to_string(static_cast<long long>(version->number()));
    bad(where, "schema version " + found + ", this runtime reads version " + std::to_string(kSchemaVersion) +
                   " (re-export the model with this release)");
  }
}

}  // namespace

bool fold_normalization(float scale, const float mean[3], const float sd[3], float mul[3], float add[3]) {
  for (int c = 0; c < 3; ++c)
    if (!(sd[c] != 0.f) || std::isnan(sd[c])) return false;
  for (int c = 0; c < 3; ++c) {
    mul[c] = scale / sd[c];
    add[c] = -mean[c] / sd[c];
  }
  return true;
}

DType parse_dtype(const std::string &name, const std::string &where) {
  if (name == "uint8") return DType::U8;
  if (name == "int32") return DType::I32;
  if (name == "int64") return DType::I64;
  if (name == "float16") return DType::F16;
  if (name == "float32") return DType::F32;
  fail(SRT_ERROR_UNSUPPORTED, where + ": tensor dtype '" + name + "' is not one this core handles "
                                      "(uint8, int32, int64, float16, float32)");
}

size_t dtype_size(DType t) {
  switch (t) {
    case DType::U8: return 1;
    case DType::F16: return 2;
    case DType::I32: case DType::F32: return 4;
    case DType::I64: return 8;
  }
  return 0;
}

const char *dtype_name(DType t) {
  switch (t) {
    case DType::U8: return "uint8";
    case DType::I32: return "int32";
    case DType::I64: return "int64";
    case DType::F16: return "float16";
    case DType::F32: return "float32";
  }
  return "?";
}

size_t TensorSpec::count() const {
  size_t n = 1;
  for (int64_t d : shape) n *= static_cast<size_t>(d);
  return n;
}

const TensorSpec *ModelManifest::output(const std::string &meaning) const {
  for (const TensorSpec &o : outputs)
    if (o.meaning == meaning) return &o;
  return nullptr;
}

Json read_json_file(const std::string &path, std::string *raw) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(SRT_ERROR_NOT_FOUND, "cannot open manifest " + path);
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) fail(SRT_ERROR_NOT_FOUND, "cannot read manifest " + path);
  if (!raw) return Json::parse(text.str(), path);
  *raw = text.str();
  return Json::parse(*raw, path);
}

void verify_manifest_digest(const std::string &raw, const Json &root, const std::string &where, bool allow_legacy) {
  static const std::string name = "\"manifest_sha256\"";
  const size_t at = raw.find(name);
  const bool once = at != std::string::npos && raw.find(name, at + 1) == std::string::npos;
  size_t start = std::string::npos;
  if (once) {  // name, blanks, ':', blanks, '"', 64 lower-case hex digits, '"'
    size_t i = at + name.size();
    auto blanks = [&] {
      while (i < raw.size() && (raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\r' || raw[i] == '\n')) ++i;
    };
    blanks();
    if (i < raw.size() && raw[i] == ':') {
      ++i;
      blanks();
      if (i + 66 <= raw.size() && raw[i] == '"' && raw[i + 65] == '"') {
        bool hex = true;
        for (size_t k = i + 1; k < i + 65; ++k) hex &= (raw[k] >= '0' && raw[k] <= '9') || (raw[k] >= 'a' && raw[k] <= 'f');
        if (hex) start = i + 1;
      }
    }
  }
  const Json *field = root.get("manifest_sha256");
  if (start == std::string::npos) {
    if (field) bad(where, "malformed manifest_sha256 (64 lowercase hex digits, once, at the top level)");
    if (allow_legacy) {
      log(SRT_LOG_WARNING, (where + " has no manifest_sha256: a legacy manifest, opened unverified").c_str());
      return;
    }
    bad(where, "no manifest_sha256 (a manifest written before manifests were sealed, or by hand): re-export it, or "
               "open it with allow_legacy");
  }
  const std::string recorded = raw.substr(start, 64);
  if (!field || !field->is_string() || field->string() != recorded) bad(where, "manifest_sha256 is not a top-level field");
  std::string sealed = raw;
  sealed.replace(start, 64, 64, '0');
  if (sha256_bytes(sealed) != recorded)
    fail(SRT_ERROR_MANIFEST, where + " does not match its manifest_sha256 (edited or damaged since it was written: "
                                     "re-export it)");
}

Resolved resolve(const std::string &path) {
  Resolved r;
  if (path.empty()) fail(SRT_ERROR_INVALID_ARGUMENT, "empty engine path");
  if (is_dir(path)) {
    std::string bundle = path + "/forecast.json";
    if (!is_file(bundle))
      fail(SRT_ERROR_NOT_FOUND, path + " is a folder without a forecast.json: give an artifact, its manifest, or a "
                                       "forecast bundle's folder");
    r.artifact = path, r.manifest = bundle;
  } else if (ends_with(path, ".json")) {
    r.manifest = path, r.artifact = path.substr(0, path.size() - 5);
  } else {
    r.artifact = path, r.manifest = path + ".json";
  }
  if (!is_file(r.manifest)) {
    if (!is_file(r.artifact) && !ends_with(path, ".json"))
      fail(SRT_ERROR_NOT_FOUND, "engine not found: " + path);
    fail(SRT_ERROR_NOT_FOUND, "no manifest for " + r.artifact + ": expected " + r.manifest + " (re-export with rt-export)");
  }
  Json root = read_json_file(r.manifest);
  check_schema(root, r.manifest);
  const Json *task = root.get("task");
  r.task = task && task->is_string() ? task->string() : "";
  r.bundle = r.task == "forecast";
  if (r.bundle) r.artifact = dirname(r.manifest);
  return r;
}

ModelManifest load_model_manifest(const std::string &artifact, const std::string &manifest_path, bool allow_legacy) {
  const std::string &where = manifest_path;
  std::string raw;
  Json root = read_json_file(manifest_path, &raw);
  check_schema(root, where);
  for (const char *key : {"arch", "task", "artifact", "input", "outputs", "classes", "ignore_id", "precision"})
    if (!root.has(key)) bad(where, std::string("missing field '") + key + "'");
  ModelManifest m;
  m.manifest_path = manifest_path;
  m.artifact_path = artifact;
  m.arch = root.at("arch").string();
  m.task = root.at("task").string();
  if (m.task != "segmentation" && m.task != "outlier" && m.task != "forecast_stage")
    bad(where, "unknown task '" + m.task + "'");
  if (m.task == "forecast_stage") {
    const Json *stage = root.get("stage");
    m.stage = stage && stage->is_string() ? stage->string() : "";
    if (m.stage != "features" && m.stage != "f2f" && m.stage != "decoder")
      bad(where, "forecast stage '" + m.stage + "' not one of features, f2f, decoder");
    if (const Json *rate = root.get("frame_rate")) m.frame_rate = *rate;
    if (const Json *offsets = root.get("past_offsets")) m.past_offsets = *offsets;
  }
  m.precision = root.at("precision").string();
  const Json &art = root.at("artifact");
  if (!art.is_object()) bad(where, "'artifact' must be an object");
  if (const Json *f = art.get("format")) m.format = f->string();
  if (const Json *s = art.get("sha256"))
    if (!s->is_null()) {  // runtime/manifest.py _verify_artifact: 64 lowercase hex digits, not all zero
      bool ok = s->is_string() && s->string().size() == 64 &&
                s->string().find_first_not_of("0123456789abcdef") == std::string::npos &&
                s->string().find_first_not_of('0') != std::string::npos;
      if (!ok) bad(where, "malformed or all-zero artifact sha256 (64 hex digits expected; re-export)");
      m.sha256 = s->string();
    }
  m.input = input_of(root, where);
  const Json &outs = root.at("outputs");
  if (!outs.is_array() || outs.size() == 0) bad(where, "'outputs' must be a non-empty list");
  for (const Json &o : outs.elements()) {
    for (const char *key : {"name", "shape", "dtype", "meaning"})
      if (!o.has(key)) bad(where, std::string("output without '") + key + "'");
    TensorSpec t;
    t.name = o.at("name").string();
    if (t.name.empty()) bad(where, "output name must be a non-empty string");
    t.shape = shape_of(o.at("shape"), where);
    t.dtype = parse_dtype(o.at("dtype").string(), where);
    t.meaning = o.at("meaning").string();
    if (t.meaning != "class_map" && t.meaning != "logits" && t.meaning != "outlier_score" && t.meaning != "features")
      bad(where, "output " + t.name + " has unknown meaning '" + t.meaning + "'");
    m.outputs.push_back(t);
  }
  m.classes = classes_of(root, where);
  if (const Json *o = root.get("outlier")) {
    m.has_outlier_block = o->is_object();
    if (const Json *t = o->get("default_threshold")) {
      double v = t->number();
      if (!(v >= 0.0 && v <= 1.0)) bad(where, "outlier.default_threshold must be between 0 and 1");
      m.outlier_threshold = static_cast<float>(v);
    }
  }
  if (const Json *t = root.get("tensorrt")) m.tensorrt = *t;
  verify_manifest_digest(raw, root, where, allow_legacy);
  if (!is_file(artifact)) fail(SRT_ERROR_NOT_FOUND, "manifest " + where + " has no artifact beside it: " + artifact + " is missing");
  return m;
}

BundleManifest load_bundle_manifest(const std::string &manifest_path, bool allow_legacy) {
  const std::string &where = manifest_path;
  std::string raw;
  Json root = read_json_file(manifest_path, &raw);
  check_schema(root, where);
  for (const char *key : {"task", "arch", "precision", "stages", "past_offsets", "horizon", "frame_rate", "feature_shape",
                          "classes", "ignore_id", "input"})
    if (!root.has(key)) bad(where, std::string("missing field '") + key + "'");
  BundleManifest b;
  b.manifest_path = manifest_path;
  b.folder = dirname(manifest_path);
  b.arch = root.at("arch").string();
  b.precision = root.at("precision").string();
  const Json &stages = root.at("stages");
  const char *names[3] = {"features", "f2f", "decoder"};
  if (!stages.is_object() || stages.items().size() != 3) bad(where, "'stages' must map exactly features, f2f, decoder to artifact paths");
  for (int i = 0; i < 3; ++i) {
    const Json *s = stages.get(names[i]);
    if (!s || !s->is_string() || s->string().empty())
      bad(where, std::string("stage '") + names[i] + "' must be a path relative to the bundle");
    b.stage_paths[i] = s->string()[0] == '/' ? s->string() : b.folder + "/" + s->string();
  }
  if (const Json *pins = root.get("stage_sha256")) {  // runtime/manifest.py _validate_bundle
    if (!pins->is_object() || pins->items().size() != 3) bad(where, "'stage_sha256' must map exactly features, f2f, decoder to 64 hex digits");
    for (int i = 0; i < 3; ++i) {
      const Json *p = pins->get(names[i]);
      if (!p || !p->is_string() || p->string().size() != 64 ||
          p->string().find_first_not_of("0123456789abcdef") != std::string::npos ||
          p->string().find_first_not_of('0') == std::string::npos)
        bad(where, std::string("'stage_sha256' of stage '") + names[i] + "' must be 64 hex digits");
      b.stage_sha256[i] = p->string();
    }
  }
  const Json &offsets = root.at("past_offsets");
  if (!offsets.is_array() || offsets.size() == 0) bad(where, "'past_offsets' must be ascending integer frame offsets ending with 0");
  for (const Json &o : offsets.elements()) b.past_offsets.push_back(static_cast<int>(o.integer()));
  for (size_t i = 1; i < b.past_offsets.size(); ++i)
    if (b.past_offsets[i] <= b.past_offsets[i - 1]) bad(where, "'past_offsets' must be ascending");
  if (b.past_offsets.back() != 0) bad(where, "'past_offsets' must end with 0");
  long long horizon = root.at("horizon").integer();
  if (horizon <= 0) bad(where, "'horizon' must be a positive number of frames");
  b.horizon = static_cast<int>(horizon);
  b.frame_rate = root.at("frame_rate").number();
  if (!(b.frame_rate > 0)) bad(where, "'frame_rate' must be a positive number (Hz)");
  b.feature_shape = shape_of(root.at("feature_shape"), where);
  if (b.feature_shape.size() != 4) bad(where, "'feature_shape' must be 4 positive integers (N, C, H, W)");
  b.classes = classes_of(root, where);
  b.input = input_of(root, where);
  if (b.input.kind != "frame") bad(where, "the bundle's 'input' must be the frame input of its features stage");
  verify_manifest_digest(raw, root, where, allow_legacy);
  return b;
}

}  // namespace srt
