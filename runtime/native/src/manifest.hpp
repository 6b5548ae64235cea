// The manifest (schema version 1): typed, validated access for the core.
// Mirrors runtime/manifest.py: the same required fields, the same refusals (another schema
// version, unknown task, layout, colour order or meaning), one-line messages.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "json.hpp"

namespace srt {

const int kSchemaVersion = 1;

enum class DType { U8, I32, I64, F16, F32 };
DType parse_dtype(const std::string &name, const std::string &where);
size_t dtype_size(DType t);
const char *dtype_name(DType t);

enum class Resize { Stretch, Letterbox, Crop };

struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;
  DType dtype = DType::F32;
  std::string meaning;  // outputs: class_map | logits | outlier_score | features
  size_t count() const;
};

struct InputSpec : TensorSpec {
  std::string kind = "frame";  // frame | features
  bool nchw = false;
  bool rgb = false;            // the colour order the network is fed
  bool in_graph = true;        // normalization happens inside the network
  float mul[3] = {1, 1, 1};    // host normalization folded: x * mul + add == (x * scale - mean) / std
  float add[3] = {0, 0, 0};
  Resize resize = Resize::Stretch;
  int height = 0, width = 0;
};

// Host normalization folded into one multiply-add per channel, as the exporter defines it:
// mul = float32(scale) / std, add = -mean / std, all in float32. False when a std is 0 (or NaN).
bool fold_normalization(float scale, const float mean[3], const float sd[3], float mul[3], float add[3]);

struct ClassSpec {
  int id = 0;
  std::string name;
  uint8_t color[3] = {0, 0, 0};
};

// One artifact's manifest (task segmentation, outlier or forecast_stage).
struct ModelManifest {
  std::string manifest_path, artifact_path;
  std::string arch, task, stage, precision, format, sha256;
  InputSpec input;
  std::vector<TensorSpec> outputs;
  std::vector<ClassSpec> classes;
  bool has_outlier_block = false;
  // A bundle stage may repeat the bundle's frame_rate / past_offsets (null: it does not); the
  // bundle refuses a stage that says otherwise.
  Json frame_rate, past_offsets;
  float outlier_threshold = 0.5f;
  Json tensorrt;  // the plan's `tensorrt` block (null for ONNX)
  const TensorSpec *output(const std::string &meaning) const;  // nullptr when absent
};

// A forecast bundle's forecast.json.
struct BundleManifest {
  std::string manifest_path, folder;
  std::string arch, precision;
  std::array<std::string, 3> stage_paths;  // features, f2f, decoder (absolute or relative to cwd)
  std::array<std::string, 3> stage_sha256;  // pinned by forecast.json (empty: an older bundle)
  std::vector<int> past_offsets;
  int horizon = 0;
  double frame_rate = 0;
  std::vector<int64_t> feature_shape;
  std::vector<ClassSpec> classes;
  InputSpec input;
};

// Where `path` points: an artifact (its sidecar is path + ".json"), a manifest, or a bundle.
struct Resolved {
  std::string artifact, manifest;
  std::string task;     // the manifest's "task" ("" when it has none or not a string)
  bool bundle = false;  // task is "forecast" (artifact: the bundle's folder)
};
Resolved resolve(const std::string &path);

// raw: when given, receives the file's bytes (for the manifest digest).
Json read_json_file(const std::string &path, std::string *raw = nullptr);
// allow_legacy: accept a manifest without "manifest_sha256" (else SRT_ERROR_MANIFEST); one whose
// digest does not match its bytes is refused always (see verify_manifest_digest).
ModelManifest load_model_manifest(const std::string &artifact, const std::string &manifest_path, bool allow_legacy);
BundleManifest load_bundle_manifest(const std::string &manifest_path, bool allow_legacy);

// The manifest's own digest, as runtime/manifest.py writes it (manifest_digest): the sha256 of the
// file's bytes with the 64 hex digits of its one "manifest_sha256" field replaced by 64 '0's.
// Bytes, not re-serialized JSON: nothing here has to format floats or order keys as Python does.
void verify_manifest_digest(const std::string &raw, const Json &root, const std::string &where, bool allow_legacy);

}  // namespace srt
