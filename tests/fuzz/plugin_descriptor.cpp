// The plugin descriptor validator on random contents behind a valid entry symbol: every struct is
// allocated with exactly the struct_size it claims (so AddressSanitizer sees a read past a short
// struct), strings are arbitrary, parameter specs have random types, bounds and default literals.
// validate_plugin_entry refuses with UserError or accepts; nothing else.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstring>
#include <memory>
#include <vector>

#include "fuzz_common.hpp"
#include "plugin_host/library.hpp"

namespace {

keel_status_t fake_create(const keel_host_t *, const keel_params_t *, keel_plugin_t **) { return KEEL_OK; }

// A copy of `full` cut to `size` bytes (at most sizeof(T)), its struct_size set to `size`.
template <class T>
T *cut(FuzzedDataProvider &in, T full, std::vector<std::unique_ptr<char[]>> &keep) {
  const size_t size = in.ConsumeIntegralInRange<size_t>(sizeof(uint32_t), sizeof(T));
  full.struct_size = static_cast<uint32_t>(in.ConsumeBool() ? sizeof(T) : size);
  const size_t bytes = std::max<size_t>(full.struct_size, sizeof(uint32_t));
  keep.emplace_back(new char[bytes]);
  std::memcpy(keep.back().get(), &full, bytes);
  return reinterpret_cast<T *>(keep.back().get());
}

const char *text(FuzzedDataProvider &in, std::vector<std::string> &strings) {
  if (in.ConsumeIntegralInRange<int>(0, 15) == 0) return nullptr;
  strings.push_back(in.ConsumeRandomLengthString(40));
  return strings.back().c_str();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  FuzzedDataProvider in(data, size);
  std::vector<std::unique_ptr<char[]>> keep;
  std::vector<std::string> strings;
  strings.reserve(1024);  // c_str() pointers stay valid

  const uint32_t n_params = in.ConsumeIntegralInRange<uint32_t>(0, 6);
  std::vector<const keel_param_spec_t *> params;
  for (uint32_t i = 0; i < n_params; ++i) {
    keel_param_spec_t p{};
    p.name = text(in, strings);
    p.type = static_cast<keel_param_type_t>(in.ConsumeIntegralInRange<int>(-1, 9));
    p.default_value = text(in, strings);
    p.min = in.ConsumeFloatingPoint<double>();
    p.max = in.ConsumeBool() ? p.min + in.ConsumeFloatingPointInRange<double>(0, 1e9) : in.ConsumeFloatingPoint<double>();
    p.choices = in.ConsumeBool() ? nullptr : text(in, strings);
    p.description = text(in, strings);
    params.push_back(in.ConsumeIntegralInRange<int>(0, 20) == 0 ? nullptr : cut(in, p, keep));
  }

  keel_plugin_descriptor_t d{};
  d.id = in.ConsumeBool() ? "org.fuzz.plugin" : text(in, strings);
  d.name = in.ConsumeBool() ? "fuzz_plugin" : text(in, strings);
  d.kind = static_cast<keel_kind_t>(in.ConsumeIntegralInRange<int>(-1, 9));
  d.version = in.ConsumeBool() ? "1.0.0" : text(in, strings);
  d.description = text(in, strings);
  d.license = text(in, strings);
  d.vendor = text(in, strings);
  d.hooks = in.ConsumeIntegral<uint64_t>() & (in.ConsumeBool() ? 0x3ffu : ~0ull);
  d.flags = in.ConsumeIntegral<uint64_t>();
  d.n_params = in.ConsumeBool() ? n_params : in.ConsumeIntegralInRange<uint32_t>(0, n_params);
  d.params = params.empty() && in.ConsumeBool() ? nullptr : params.data();
  d.requires_torch = in.ConsumeBool() ? nullptr : text(in, strings);

  keel_plugin_entry_t e{};
  e.abi = {in.ConsumeBool() ? KEEL_ABI_MAJOR : in.ConsumeIntegral<uint32_t>(),
           in.ConsumeBool() ? KEEL_ABI_MINOR : in.ConsumeIntegral<uint32_t>()};
  e.descriptor = in.ConsumeIntegralInRange<int>(0, 20) == 0 ? nullptr : cut(in, d, keep);
  e.create = in.ConsumeIntegralInRange<int>(0, 20) == 0 ? nullptr : fake_create;
  keel::fuzz::expect_user_error_or_success([&] { keel::validate_plugin_entry(cut(in, e, keep)); });
  return 0;
}
