// srt_overhead: what the native path costs per frame on top of the bare OpenVINO inference call.
//
//   srt_overhead ENGINE.onnx THREADS ROUNDS CALLS [WIDTHxHEIGHT of the camera frame]
//
// Times, interleaved in ROUNDS rounds of CALLS calls each (order rotated every round):
//   bare    - ov::InferRequest::infer() on the same ONNX, compiled as the core compiles it (CPU,
//             LATENCY, INFERENCE_PRECISION_HINT f32, THREADS), input already in its tensor;
//   net     - srt_engine_run on a BGR frame of the network's size (colour order, normalization,
//             layout, copy into the input tensor, inference, class map out);
//   camera  - srt_engine_run on a camera-sized BGR frame (the same plus the bilinear resize).
// Prints one JSON object: per-call samples (ms) of each, the core's own stage means, and per native
// call its wall time minus the inference call inside it (what the native path adds: argument
// checks, resize, colour order, normalization, layout, output conversion), which a busy machine's
// inference jitter does not blur.
// Used by benchmarks/native_overhead.py; speed targets live there, not in tests.
#include <openvino/openvino.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "swiftrt.h"

namespace {

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void print_list(const char *name, const std::vector<double> &v, bool comma) {
  std::printf("\"%s\": [", name);
  for (size_t i = 0; i < v.size(); ++i) std::printf("%s%.5f", i ? ", " : "", v[i]);
  std::printf("]%s\n", comma ? "," : "");
}

}  // namespace

int main(int argc, char **argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s ENGINE.onnx THREADS ROUNDS CALLS [WxH]\n", argv[0]);
    return 2;
  }
  const std::string path = argv[1];
  const int threads = std::atoi(argv[2]), rounds = std::atoi(argv[3]), calls = std::atoi(argv[4]);
  int cam_w = 1920, cam_h = 1080;
  if (argc > 5 && std::sscanf(argv[5], "%dx%d", &cam_w, &cam_h) != 2) return 2;

  // The bare call, compiled like the core's OpenVINO backend compiles it.
  ov::Core core;
  ov::AnyMap config{{ov::hint::performance_mode.name(), ov::hint::PerformanceMode::LATENCY},
                    {ov::hint::inference_precision.name(), ov::element::f32}};
  if (threads > 0) config[ov::inference_num_threads.name()] = threads;
  ov::CompiledModel compiled = core.compile_model(path, "CPU", config);
  ov::InferRequest request = compiled.create_infer_request();
  std::mt19937 rng(0);
  {
    ov::Tensor input = request.get_input_tensor();
    unsigned char *bytes = static_cast<unsigned char *>(input.data());
    for (size_t i = 0; i < input.get_byte_size(); ++i) bytes[i] = static_cast<unsigned char>(rng() & 0x3F);
  }

  srt_open_options options;
  srt_open_options_init(&options);
  options.threads = threads;
  srt_engine *engine = nullptr;
  if (srt_engine_open(path.c_str(), &options, &engine) != SRT_OK) {
    std::fprintf(stderr, "srt_overhead: %s\n", srt_last_error());
    return 2;
  }
  struct srt_engine_info info;
  srt_engine_info_init(&info);
  srt_engine_info(engine, &info);
  std::vector<unsigned char> net(static_cast<size_t>(info.input_width) * info.input_height * 3),
      cam(static_cast<size_t>(cam_w) * cam_h * 3), map(static_cast<size_t>(info.output_width) * info.output_height);
  for (auto &b : net) b = static_cast<unsigned char>(rng());
  for (auto &b : cam) b = static_cast<unsigned char>(rng());
  std::vector<float> score(info.has_outlier_score ? map.size() : 0);

  srt_result result;
  srt_result_init(&result);
  result.class_map = map.data();
  result.class_map_size = map.size();
  if (info.has_outlier_score) result.outlier_score = score.data(), result.outlier_score_size = score.size() * 4;
  auto run_native = [&](const std::vector<unsigned char> &pixels, int w, int h) {
    srt_frame frame;
    srt_frame_init(&frame);
    frame.format = SRT_FORMAT_BGR8;
    frame.width = w, frame.height = h, frame.stride = static_cast<size_t>(w) * 3;
    frame.data = pixels.data();
    frame.data_size = pixels.size();
    if (srt_engine_run(engine, &frame, &result) != SRT_OK) {
      std::fprintf(stderr, "srt_overhead: %s\n", srt_last_error());
      std::exit(1);
    }
  };
  std::vector<double> samples[3], outside[2];  // outside: a native call's wall time minus its inference
  double stage[2][3] = {{0, 0, 0}, {0, 0, 0}};
  auto call = [&](int which, bool timed) {
    double t0 = now_ms();
    if (which == 0) request.infer();
    else if (which == 1) run_native(net, info.input_width, info.input_height);
    else run_native(cam, cam_w, cam_h);
    double ms = now_ms() - t0;
    if (which > 0 && timed) {
      outside[which - 1].push_back(ms - result.inference_ms);
      stage[which - 1][0] += result.preprocess_ms;
      stage[which - 1][1] += result.inference_ms;
      stage[which - 1][2] += result.postprocess_ms;
    }
    return ms;
  };
  for (int w = 0; w < 3; ++w)
    for (int i = 0; i < 10; ++i) call(w, false);  // warm-up, not counted
  for (int r = 0; r < rounds; ++r)
    for (int k = 0; k < 3; ++k) {
      int which = (r + k) % 3;
      call(which, false);  // one untimed call when switching: the thread pool wakes up
      for (int i = 0; i < calls; ++i) samples[which].push_back(call(which, true));
    }
  const double n = static_cast<double>(rounds) * calls;
  std::printf("{\"engine\": \"%s\", \"threads\": %d, \"rounds\": %d, \"calls_per_round\": %d,\n", path.c_str(), threads,
              rounds, calls);
  std::printf("\"input\": [%d, %d], \"camera_size\": [%d, %d], \"core\": \"%s\", \"backend\": \"%s\",\n", info.input_height,
              info.input_width, cam_h, cam_w, srt_version(), info.backend_name);
  print_list("bare", samples[0], true);
  print_list("net", samples[1], true);
  print_list("camera", samples[2], true);
  print_list("net_outside_inference", outside[0], true);
  print_list("camera_outside_inference", outside[1], true);
  std::printf("\"stages_net\": {\"preprocess\": %.5f, \"inference\": %.5f, \"postprocess\": %.5f},\n", stage[0][0] / n,
              stage[0][1] / n, stage[0][2] / n);
  std::printf("\"stages_camera\": {\"preprocess\": %.5f, \"inference\": %.5f, \"postprocess\": %.5f}}\n", stage[1][0] / n,
              stage[1][1] / n, stage[1][2] / n);
  srt_engine_close(engine);
  return 0;
}
