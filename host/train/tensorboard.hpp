// TensorBoard scalars without TensorFlow: an events file of TFRecord-framed Event protos
// (wall_time, step, Summary{Value{tag, simple_value}}), which the tensorboard package reads.
#pragma once
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

namespace keel {

class TensorBoardWriter {
 public:
  explicit TensorBoardWriter(const std::filesystem::path &dir);  // writes events.out.tfevents.<time>.keel
  void scalar(const std::string &tag, double value, int64_t step);
  void flush() { out_.flush(); }

 private:
  void record(const std::string &event);
  std::ofstream out_;
};

}  // namespace keel
