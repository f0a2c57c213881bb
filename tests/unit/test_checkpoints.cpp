// Checkpoint folders: re-saving a step never leaves a moment without it, and a checkpoint displaced
// by a crash between the two renames is still found.
#include <doctest/doctest.h>

#include "temp_path.hpp"

#include <filesystem>
#include <fstream>

#include "common/errors.hpp"
#include "train/checkpoints.hpp"

namespace fs = std::filesystem;
using namespace keel;

namespace {
void state(const fs::path &dir, int64_t step, const std::string &tag) {
  std::ofstream(dir / "trainer_state.json") << "{\"step\": " << step << ", \"healthy\": true}";
  std::ofstream(dir / "tag") << tag;
}
std::string tag_of(const fs::path &dir) {
  std::ifstream in(dir / "tag");
  std::string t;
  in >> t;
  return t;
}
}  // namespace

TEST_CASE("checkpoints: re-saving a step replaces it only once the new one is whole") {
  const fs::path dir = temp_path("ckpt-resave");
  fs::remove_all(dir);
  write_checkpoint(dir, 5, [](const fs::path &d) { state(d, 5, "first"); });
  // A fill that fails leaves the existing step-5 as it was.
  CHECK_THROWS(write_checkpoint(dir, 5, [](const fs::path &d) {
    state(d, 5, "half");
    throw std::runtime_error("disk full");
  }));
  auto all = list_checkpoints(dir);
  REQUIRE(all.size() == 1);
  CHECK(tag_of(all[0].path) == "first");
  write_checkpoint(dir, 5, [](const fs::path &d) { state(d, 5, "second"); });
  all = list_checkpoints(dir);
  REQUIRE(all.size() == 1);
  CHECK(tag_of(all[0].path) == "second");
  CHECK_FALSE(fs::exists(dir / ".old-step-000005"));

  // A crash after step-5 was moved aside and before its successor was renamed in: the old one counts.
  fs::rename(dir / "step-000005", dir / ".old-step-000005");
  all = list_checkpoints(dir);
  REQUIRE(all.size() == 1);
  CHECK(all[0].step == 5);
  CHECK(tag_of(all[0].path) == "second");
  prune_checkpoints(dir, 3);  // and pruning keeps it
  CHECK(list_checkpoints(dir).size() == 1);
  fs::remove_all(dir);
}

TEST_CASE("checkpoints: a manifest of sizes and hashes finds a damaged or missing file") {
  const fs::path dir = temp_path("ckpt-manifest");
  fs::remove_all(dir);
  const fs::path c = write_checkpoint(dir, 3, [](const fs::path &d) {
    state(d, 3, "whole");
    std::ofstream(d / "weights.bin") << std::string(100000, 'w');
  });
  REQUIRE(fs::exists(c / "manifest.json"));
  CHECK_NOTHROW(verify_checkpoint(c));
  {  // one byte flipped in place: same size, another hash
    std::fstream f(c / "weights.bin", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(5000);
    f.put('x');
  }
  CHECK_THROWS_WITH_AS(verify_checkpoint(c), doctest::Contains("weights.bin is damaged"), UserError);
  fs::resize_file(c / "weights.bin", 10);
  CHECK_THROWS_WITH_AS(verify_checkpoint(c), doctest::Contains("weights.bin is damaged (10 bytes"), UserError);
  fs::remove(c / "weights.bin");
  CHECK_THROWS_WITH_AS(verify_checkpoint(c), doctest::Contains("weights.bin is missing"), UserError);
}
