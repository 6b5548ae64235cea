// The model families the core knows, by the task their manifest names: one line each.
#include "task.hpp"

#include "../error.hpp"

namespace srt {

std::unique_ptr<Task> open_segmentation(const Resolved &, const OpenOptions &);    // segmentation.cpp
std::unique_ptr<Task> open_outlier(const Resolved &, const OpenOptions &);         // outlier.cpp
std::unique_ptr<Task> open_forecast(const Resolved &, const OpenOptions &);        // forecast.cpp
std::unique_ptr<Task> open_forecast_stage(const Resolved &, const OpenOptions &);  // forecast.cpp: refused

namespace {

const struct {
  const char *task;
  std::unique_ptr<Task> (*open)(const Resolved &, const OpenOptions &);
} kTasks[] = {
    {"segmentation", open_segmentation},
    {"outlier", open_outlier},
    {"forecast", open_forecast},
    {"forecast_stage", open_forecast_stage},
};

}  // namespace

std::unique_ptr<Task> open_task(const Resolved &where, const OpenOptions &options) {
  for (const auto &t : kTasks)
    if (where.task == t.task) return t.open(where, options);
  // No such family: the manifest's own checks say what is wrong with it (a missing or unknown task).
  load_model_manifest(where.artifact, where.manifest, options.allow_legacy);
  fail(SRT_ERROR_MANIFEST, where.manifest + ": unknown task '" + where.task + "'");
}

void refuse_outlier_buffers(const srt_result &r) {
  if (r.outlier_score || r.outlier_mask)
    fail(SRT_ERROR_INVALID_ARGUMENT, "this engine has no outlier score: set outlier_score and outlier_mask to NULL");
}

void refuse_forecast_map(const srt_result &r) {
  if (r.forecast_map) fail(SRT_ERROR_INVALID_ARGUMENT, "this engine is not a forecast bundle: set forecast_map to NULL");
}

}  // namespace srt
