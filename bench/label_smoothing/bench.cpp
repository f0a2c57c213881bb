// label_smoothing at a Qwen vocabulary (issue 6): the loss step at V = 151,936 and 4,096 tokens,
// keel's way (host/train/chunked_loss.cpp computing logits a chunk at a time, the label_smoothing
// plugin .so, loaded through its ABI, writing each chunk's gradient in place) against the
// full-logits way as transformers' LabelSmoother does it (all [N, V] logits, log_softmax over them,
// autograd). Both ways take hidden states [N, 64] and the LM head [V, 64] and leave the loss and
// both gradients. Each runs in its own process: peak memory = peak RSS minus the RSS just before
// the first step (inputs and libraries cancel out); time = median of 3 steps after a warm-up.
//
// usage: bench_label_smoothing [PLUGIN.so]     (prints both ways and the ratios)
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "../../tests/label_smoothing/plugin_loader.hpp"
#include "train/chunked_loss.hpp"

namespace {
constexpr int64_t N = 4096, V = 151936, H = 64;
constexpr double kEps = 0.1;

double rss_mib(const char *field) {  // VmRSS or VmHWM from /proc/self/status
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field, 0) == 0) return std::stod(line.substr(std::string(field).size() + 1)) / 1024.0;
  return 0;
}

int child(const std::string &plugin, const std::string &mode) {
  torch::manual_seed(0);
  auto hidden = torch::randn({N, H}).requires_grad_(true);
  auto head = (torch::randn({V, H}) * 0.02).requires_grad_(true);
  auto labels = torch::randint(0, V, {N}, torch::kInt64);
  labels.masked_fill_(torch::rand({N}) < 0.1, -100);  // prompt tokens
  lstest::Instance ls(plugin.c_str(), kEps, "uniform");
  auto loss_fn = [&](const torch::Tensor &logits, const torch::Tensor &lab, torch::Tensor &grad) {
    int64_t sx[2] = {logits.size(0), logits.size(1)}, sy[1] = {lab.size(0)}, sg[2] = {grad.size(0), grad.size(1)};
    DLTensor x = lstest::view(logits.data_ptr(), {kDLCPU, 0}, {kDLFloat, 32, 1}, sx, 2);
    DLTensor y = lstest::view(lab.data_ptr(), {kDLCPU, 0}, {kDLInt, 64, 1}, sy, 1);
    DLTensor g = lstest::view(grad.data_ptr(), {kDLCPU, 0}, {kDLFloat, 32, 1}, sg, 2);
    double sum = 0;
    int64_t count = 0;
    if (ls.loss(x, y, g, sum, count) != KEEL_OK) throw std::runtime_error("label_smoothing: " + ls.host.error);
    return std::make_pair(sum, count);
  };
  auto step = [&] {
    hidden.mutable_grad() = torch::Tensor();
    head.mutable_grad() = torch::Tensor();
    if (mode == "chunked") {  // the trainer's path: counted rows only, ~128 MB of logits a chunk
      auto rows = (labels != -100).nonzero().squeeze(1);
      auto sel = hidden.index_select(0, rows);
      keel::chunked_loss_backward(sel, labels.index_select(0, rows), head, 1.0 / rows.size(0), keel::auto_chunk_rows(V),
                                  loss_fn);
    } else {  // transformers' LabelSmoother over full logits
      auto logits = hidden.matmul(head.t());
      auto log_probs = -torch::log_softmax(logits, -1);
      auto mask = labels == -100;
      auto nll = log_probs.gather(-1, labels.clamp_min(0).unsqueeze(-1)).squeeze(-1).masked_fill(mask, 0);
      auto smoothed = log_probs.sum(-1).masked_fill(mask, 0);
      const double n = (~mask).sum().item<double>();
      auto loss = (1 - kEps) * nll.sum() / n + kEps * smoothed.sum() / (n * V);
      loss.backward();
    }
  };
  const double before = rss_mib("VmRSS:");
  std::vector<double> secs;
  for (int i = 0; i < 4; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    step();
    if (i > 0) secs.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(secs.begin(), secs.end());
  std::printf("%.1f %.4f\n", rss_mib("VmHWM:") - before, secs[1]);
  return 0;
}

std::pair<double, double> run(const char *self, const std::string &plugin, const char *mode) {
  int fd[2];
  if (pipe(fd) != 0) throw std::runtime_error("pipe");
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fd[1], 1);
    execl(self, self, plugin.c_str(), mode, static_cast<char *>(nullptr));
    _exit(127);
  }
  close(fd[1]);
  char buf[256] = {};
  ssize_t n = read(fd[0], buf, sizeof buf - 1);
  int status = 0;
  waitpid(pid, &status, 0);
  double mib = 0, s = 0;
  if (n <= 0 || status != 0 || std::sscanf(buf, "%lf %lf", &mib, &s) != 2)
    throw std::runtime_error(std::string("the ") + mode + " run failed");
  return {mib, s};
}
}  // namespace

int main(int argc, char **argv) {
  const std::string plugin = argc > 1 ? argv[1] : KEEL_LS_PLUGIN;
  if (argc > 2) return child(plugin, argv[2]);
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  auto [cm, cs] = run(self.c_str(), plugin, "chunked");
  auto [fm, fs] = run(self.c_str(), plugin, "full");
  std::printf("label smoothing loss step, V = %lld, %lld tokens (10%% ignored), hidden %lld, %d threads\n",
              static_cast<long long>(V), static_cast<long long>(N), static_cast<long long>(H), torch::get_num_threads());
  std::printf("peak memory above inputs: keel chunked + plugin %.0f MiB, full logits (transformers' way) %.0f MiB: "
              "%.1fx lower (goal >= 4x)\n", cm, fm, fm / std::max(1.0, cm));
  std::printf("median step time: keel %.3f s, full logits %.3f s: ratio %.2f (goal <= 1.2)\n", cs, fs, cs / fs);
  return 0;
}
