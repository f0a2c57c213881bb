#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.hpp"

#include <pcre2.h>

#include <fmt/format.h>

#include "common/errors.hpp"

namespace keel {
namespace {

// One match block and JIT stack per thread, shared by every pattern: we read only group 0, and an
// ovector of one pair is valid for any pattern (PCRE2 then returns 0 for "groups not captured").
struct ThreadMatch {
  pcre2_match_data *md = pcre2_match_data_create(1, nullptr);
  pcre2_jit_stack *stack = pcre2_jit_stack_create(64 * 1024, 8 * 1024 * 1024, nullptr);
  pcre2_match_context *ctx = pcre2_match_context_create(nullptr);
  ThreadMatch() { pcre2_jit_stack_assign(ctx, nullptr, stack); }
  ~ThreadMatch() {
    pcre2_match_context_free(ctx);
    pcre2_jit_stack_free(stack);
    pcre2_match_data_free(md);
  }
};
ThreadMatch &thread_match() {
  thread_local ThreadMatch tm;
  return tm;
}

}  // namespace

Regex::Regex(const std::string &pattern, bool literal) {
  int err = 0;
  PCRE2_SIZE off = 0;
  uint32_t opts = PCRE2_UTF | PCRE2_NO_UTF_CHECK | (literal ? PCRE2_LITERAL : PCRE2_UCP);
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), opts, &err, &off, nullptr);
  if (!code_) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    throw UserError(fmt::format("tokenizer.json: split pattern /{}/ does not compile with PCRE2 at offset {}: {}", pattern,
                                off, reinterpret_cast<char *>(msg)));
  }
  jit_ = pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() { pcre2_code_free(code_); }

bool Regex::find(std::string_view s, size_t start, size_t &mb, size_t &me) const {
  ThreadMatch &tm = thread_match();
  auto *subj = reinterpret_cast<PCRE2_SPTR>(s.data());
  // Text reaching here is valid UTF-8 (checked or produced by us), so PCRE2's check is skipped.
  int rc = jit_ ? pcre2_jit_match(code_, subj, s.size(), start, 0, tm.md, tm.ctx)
                : pcre2_match(code_, subj, s.size(), start, PCRE2_NO_UTF_CHECK, tm.md, tm.ctx);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  if (rc < 0) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(rc, msg, sizeof msg);
    throw std::runtime_error(fmt::format("PCRE2 match failed: {}", reinterpret_cast<char *>(msg)));
  }
  PCRE2_SIZE *ov = pcre2_get_ovector_pointer(tm.md);
  mb = ov[0];
  me = ov[1];
  return true;
}

}  // namespace keel
