// Saves and loads the state of a libtorch optimizer (momentum buffers, Adam's
// moments and step counts), which tch's API does not reach. tch's
// `C_optimizer` is a `torch::optim::Optimizer *` (torch-sys, torch_api.h).
// Each function returns NULL, or an error message the caller frees with
// tessera_optimizer_free_error.

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Functions.h>
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

// The state of libtorch's default CPU generator (what dropout and
// `torch.rand` draw from): its size in bytes, a copy into `out` (of `len`
// bytes), and a restore from such a copy.
extern "C" size_t tessera_cpu_rng_state_size() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return static_cast<size_t>(at::Tensor(gen.get_state()).numel());
}

extern "C" char *tessera_cpu_rng_state_get(uint8_t *out, size_t len) {
  try {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    at::Tensor state(gen.get_state());
    if (static_cast<size_t>(state.numel()) != len) return strdup("the generator's state changed size");
    std::memcpy(out, state.data_ptr<uint8_t>(), len);
    return nullptr;
  } catch (const std::exception &e) {
    return error_text(e);
  }
}

extern "C" char *tessera_cpu_rng_state_set(const uint8_t *bytes, size_t len) {
  try {
    auto state = at::empty({static_cast<int64_t>(len)}, at::kByte);
    std::memcpy(state.data_ptr<uint8_t>(), bytes, len);
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(state);
    return nullptr;
  } catch (const std::exception &e) {
    return error_text(e);
  }
}

// Drops a tensor's gradient (tch reaches only zeroing it): the next backward
// pass writes a fresh one, as after libtorch's Optimizer::zero_grad. An
// undefined tensor has none to drop.
extern "C" void tessera_grad_reset(void *tensor) {
  auto *t = static_cast<at::Tensor *>(tensor);
  if (t->defined()) t->mutable_grad().reset();
}

extern "C" void tessera_optimizer_free_error(char *error) { free(error); }
