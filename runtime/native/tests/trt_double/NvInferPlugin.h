// Test double: TensorRT's plugin registration (NvInferPlugin.h), recording the logger it keeps.
#pragma once

extern "C" bool initLibNvInferPlugins(void *logger, char const *libNamespace);
