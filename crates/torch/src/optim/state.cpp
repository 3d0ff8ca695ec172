// Saves and loads the state of a libtorch optimizer (momentum buffers, Adam's
// moments and step counts), which tch's API does not reach. tch's
// `C_optimizer` is a `torch::optim::Optimizer *` (torch-sys, torch_api.h).
// Each function returns NULL, or an error message the caller frees with
// tessera_optimizer_free_error.

#include <torch/optim/optimizer.h>
#include <torch/serialize/archive.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace {
char *error_text(const std::exception &e) { return strdup(e.what()); }
}  // namespace

extern "C" char *tessera_optimizer_save(void *optimizer, const char *path) {
  try {
    torch::serialize::OutputArchive archive;
    static_cast<torch::optim::Optimizer *>(optimizer)->save(archive);
    archive.save_to(std::string(path));
    return nullptr;
  } catch (const std::exception &e) {
    return error_text(e);
  }
}

extern "C" char *tessera_optimizer_load(void *optimizer, const char *path) {
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(std::string(path));
    static_cast<torch::optim::Optimizer *>(optimizer)->load(archive);
    return nullptr;
  } catch (const std::exception &e) {
    return error_text(e);
  }
}

extern "C" void tessera_optimizer_free_error(char *error) { free(error); }
