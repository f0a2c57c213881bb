// A pipeline file from untrusted bytes, with `--set` overrides: the input's lines after a line
// "#--set" are overrides, one per line. Refused with UserError (file:line:col) or loaded.
#include <unistd.h>

#include <fstream>
#include <vector>

#include "config/pipeline_config.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string text(keel::fuzz::as_text(data, size));
  std::vector<std::string> overrides;
  if (size_t at = text.find("\n#--set\n"); at != std::string::npos) {
    std::string rest = text.substr(at + 8);
    text.resize(at + 1);
    for (size_t p = 0; p <= rest.size();) {
      size_t nl = rest.find('\n', p);
      if (nl == std::string::npos) nl = rest.size();
      if (nl > p) overrides.push_back(rest.substr(p, nl - p));
      p = nl + 1;
    }
  }
  static const std::string file = "/tmp/keel-fuzz-pipeline-" + std::to_string(::getpid()) + ".toml";
  std::ofstream(file, std::ios::binary | std::ios::trunc) << text;
  keel::fuzz::expect_user_error_or_success([&] {
    const keel::PipelineConfig cfg = keel::load_pipeline_config(file, overrides);
    (void)cfg.run_dir();
  });
  return 0;
}
