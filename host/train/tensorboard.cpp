#include "train/tensorboard.hpp"

#include <array>
#include <chrono>
#include <cstring>

namespace keel {

namespace {

// CRC-32C (Castagnoli), as TFRecord framing needs, masked the way TensorFlow masks it.
uint32_t crc32c(const std::string &data) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : data) c = table[(c ^ b) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}
uint32_t masked(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

// Minimal protobuf encoding: varints, fixed64/fixed32 and length-delimited fields.
void varint(std::string &s, uint64_t v) {
  while (v >= 0x80) {
    s += static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  s += static_cast<char>(v);
}
void tag(std::string &s, int field, int wire) { varint(s, (static_cast<uint64_t>(field) << 3) | wire); }
void bytes_field(std::string &s, int field, const std::string &b) {
  tag(s, field, 2);
  varint(s, b.size());
  s += b;
}
template <class T>
void fixed(std::string &s, int field, T v) {
  tag(s, field, sizeof(T) == 8 ? 1 : 5);
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));  // little-endian machines only (x86-64, arm64)
  s.append(buf, sizeof(T));
}
double now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

TensorBoardWriter::TensorBoardWriter(const std::filesystem::path &dir) {
  std::filesystem::create_directories(dir);
  const auto t = static_cast<long long>(now());
  out_.open(dir / ("events.out.tfevents." + std::to_string(t) + ".keel"), std::ios::binary | std::ios::app);
  std::string ev;
  fixed(ev, 1, now());
  bytes_field(ev, 3, "brain.Event:2");  // file_version
  record(ev);
}

void TensorBoardWriter::scalar(const std::string &name, double value, int64_t step) {
  std::string v, summary, ev;
  bytes_field(v, 1, name);                     // Summary.Value.tag
  fixed(v, 2, static_cast<float>(value));      // Summary.Value.simple_value
  bytes_field(summary, 1, v);                  // Summary.value
  fixed(ev, 1, now());                         // Event.wall_time
  tag(ev, 2, 0);
  varint(ev, static_cast<uint64_t>(step));     // Event.step
  bytes_field(ev, 5, summary);                 // Event.summary
  record(ev);
}

void TensorBoardWriter::record(const std::string &event) {
  std::string len(8, '\0');
  uint64_t n = event.size();
  std::memcpy(len.data(), &n, 8);
  uint32_t lc = masked(crc32c(len)), dc = masked(crc32c(event));
  out_.write(len.data(), 8);
  out_.write(reinterpret_cast<const char *>(&lc), 4);
  out_.write(event.data(), static_cast<std::streamsize>(event.size()));
  out_.write(reinterpret_cast<const char *>(&dc), 4);
}

}  // namespace keel
