// The training loop, top to bottom: setup, then for every step the LR chain, the batch, the
// chunked loss, the optimizer; evaluations with metrics, alarms and remedies; checkpoints.
#include "train/trainer.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstring>
#include <ctime>
#include <limits>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>

#include <ATen/autocast_mode.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "checkpoint/model_folder.hpp"
#include "common/errors.hpp"
#include "data/chat_template.hpp"
#include "data/dataset.hpp"
#include "data/record.hpp"
#include "dist/group.hpp"
#include "generate/generate.hpp"
#include "logging/log.hpp"
#include "plugin_host/params.hpp"
#include "plugin_host/pipeline.hpp"
#include "report/report.hpp"
#include "tokenizer/tokenizer.hpp"
#include "train/checkpoints.hpp"
#include "train/chunked_loss.hpp"
#include "train/data_sources.hpp"
#include "train/optimizer.hpp"
#include "train/tensorboard.hpp"

namespace keel {
namespace fs = std::filesystem;
using json = nlohmann::json;
using torch::indexing::Slice;

namespace {

std::atomic<int> g_signal{0};
void on_signal(int sig) { g_signal = sig; }

// Peak resident memory since the last reset (Linux: VmHWM, reset through clear_refs); 0 elsewhere.
double peak_rss_mb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::atof(line.c_str() + 6) / 1024.0;
  return 0;
}
void reset_peak_rss() { std::ofstream("/proc/self/clear_refs") << "5"; }

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// A DLTensor view of a contiguous tensor; `shape` keeps the sizes alive.
DLTensor dl_view(const torch::Tensor &t, std::vector<int64_t> &shape) {
  shape.assign(t.sizes().begin(), t.sizes().end());
  DLTensor d{};
  d.data = t.data_ptr();
  d.device = {t.is_cuda() ? kDLCUDA : kDLCPU, t.is_cuda() ? static_cast<int32_t>(t.get_device()) : 0};
  d.ndim = static_cast<int32_t>(shape.size());
  d.dtype = t.scalar_type() == torch::kBFloat16 ? DLDataType{kDLBfloat, 16, 1}
            : t.scalar_type() == torch::kInt64  ? DLDataType{kDLInt, 64, 1}
            : t.scalar_type() == torch::kHalf   ? DLDataType{kDLFloat, 16, 1}
                                                : DLDataType{kDLFloat, 32, 1};
  d.shape = shape.data();
  d.strides = nullptr;  // compact row-major
  return d;
}

torch::Tensor from_dl(const DLTensor &d) {
  if (d.device.device_type != kDLCPU) throw ServiceError{KEEL_INVALID_ARGUMENT, "plugin buffers must be on the CPU"};
  torch::Dtype dt;
  if (d.dtype.code == kDLFloat && d.dtype.bits == 32) dt = torch::kFloat;
  else if (d.dtype.code == kDLBfloat && d.dtype.bits == 16) dt = torch::kBFloat16;
  else throw ServiceError{KEEL_INVALID_ARGUMENT, "plugin buffers must be fp32 or bf16"};
  std::vector<int64_t> shape(d.shape, d.shape + d.ndim);
  return torch::from_blob(static_cast<char *>(d.data) + d.byte_offset, shape, torch::TensorOptions().dtype(dt));
}

struct Probe {
  std::string prompt;
  std::vector<int64_t> ids;
};

}  // namespace

// ---- the host services a training run offers plugins -------------------------------------------

class TrainerServices : public HostServices {
 public:
  Transformer *model = nullptr;
  DataSources *sources_ = nullptr;
  fs::path checkpoint_dir;
  // Inside on_eval: the probe prompts and their generations, for eval_logits().
  std::vector<std::vector<int64_t>> eval_prompts, eval_outputs;
  torch::Tensor eval_logits_buf;
  std::vector<int64_t> shape_buf;
  // The last training micro-batch, for train_entropy(): ids, positions, mask (packing), labels.
  torch::Tensor last_ids, last_pos, last_attend, last_labels;
  torch::Tensor train_entropy_buf;

  std::vector<std::string> parameter_names() override {
    std::vector<std::string> out;
    model->for_each_tensor([&](const std::string &n, const torch::Tensor &) { out.push_back(n); });
    return out;
  }
  torch::Tensor &param(const std::string &name) {
    if (!model->has_parameter(name)) throw ServiceError{KEEL_NOT_FOUND, "the model has no parameter '" + name + "'"};
    return model->parameter(name);
  }
  DLTensor parameter_view(const std::string &name) override { return dl_view(param(name), shape_buf); }
  void copy_parameter_to(const std::string &name, DLTensor &dst) override {
    auto &p = param(name);
    auto d = from_dl(dst);
    if (d.sizes() != p.sizes()) throw ServiceError{KEEL_INVALID_ARGUMENT, "copy_parameter_to: shape differs from '" + name + "'"};
    d.copy_(p.detach());
  }
  void copy_parameter_from(const std::string &name, const DLTensor &src) override {
    auto &p = param(name);
    auto s = from_dl(src);
    if (s.sizes() != p.sizes()) throw ServiceError{KEEL_INVALID_ARGUMENT, "copy_parameter_from: shape differs from '" + name + "'"};
    torch::NoGradGuard g;
    p.copy_(s);
  }
  bool embeddings_tied() override { return model->config().tie_word_embeddings; }
  void freeze_parameter(const std::string &name, int64_t until) override {
    param(name);  // must exist
    if (until <= step) frozen.erase(name);
    else frozen[name] = until;
  }
  void set_embedding_noise(double alpha) override { model->dropout.neftune_alpha = alpha; }
  std::map<std::string, int64_t> frozen;  // parameter -> first step it trains again (kForever: never)
  static constexpr int64_t kForever = std::numeric_limits<int64_t>::max();
  bool in_model_ready = false;  // adapters can be attached only there, before the optimizer exists
  void attach_lora(const keel_lora_spec_t &spec) override {
    if (!in_model_ready) throw ServiceError{KEEL_UNSUPPORTED, "attach_lora: only in on_model_ready"};
    LoraConfig c{spec.rank, spec.alpha, spec.dropout, spec.targets, seed ^ 0x6c6f7261ull};
    try {
      const size_t n = model->attach_lora(c);
      spdlog::info("LoRA: rank {}, alpha {}, dropout {} on {} projections; the base model is frozen", c.rank, c.alpha,
                   c.dropout, n);
    } catch (const UserError &e) {
      throw ServiceError{KEEL_INVALID_ARGUMENT, e.what()};
    }
    for (const auto &[n, t] : model->parameters()) frozen[n] = kForever;
  }
  void merge_lora() override { model->merge_lora(); }
  void set_dropout(keel_dropout_site_t site, double p) override { field(site) = p; }
  double dropout(keel_dropout_site_t site) override { return field(site); }
  double &field(keel_dropout_site_t site) {
    return site == KEEL_DROPOUT_EMBEDDING ? model->dropout.embedding
           : site == KEEL_DROPOUT_ATTENTION ? model->dropout.attention
                                            : model->dropout.ffn;
  }
  std::vector<keel_source_info_t> sources() override { return sources_->infos(); }
  void reshuffle_source(const std::string &name, uint64_t seed) override {
    try {
      sources_->reshuffle(sources_->index_of(name), seed);
    } catch (const UserError &e) {
      throw ServiceError{KEEL_NOT_FOUND, e.what()};
    }
  }
  DLTensor eval_logits(uint32_t i) override {
    if (i >= eval_outputs.size()) throw ServiceError{KEEL_NOT_FOUND, "eval_logits: no sample #" + std::to_string(i)};
    const auto &p = eval_prompts[i], &g = eval_outputs[i];
    if (g.empty()) {
      eval_logits_buf = torch::zeros({0, model->config().vocab_size}, torch::kFloat);
      return dl_view(eval_logits_buf, shape_buf);
    }
    // Teacher-forced over prompt + generation: the raw next-token distributions of the generation.
    torch::NoGradGuard ng;
    std::vector<int64_t> all(p);
    all.insert(all.end(), g.begin(), g.end() - 1);
    auto ids = torch::tensor(all, torch::kInt64).to(model->device()).unsqueeze(0);
    auto pos = torch::arange(static_cast<int64_t>(all.size()), torch::kInt64).to(model->device()).unsqueeze(0);
    const bool was = model->training;
    model->training = false;
    auto h = model->hidden(ids, pos)[0].index({Slice(static_cast<int64_t>(p.size()) - 1)});
    model->training = was;
    eval_logits_buf = model->logits(h).to(torch::kCPU).contiguous();
    return dl_view(eval_logits_buf, shape_buf);
  }
  DLTensor train_entropy() override {
    if (!last_ids.defined()) throw ServiceError{KEEL_UNSUPPORTED, "train_entropy: no training step has run yet"};
    torch::NoGradGuard ng;
    const bool was = model->training;
    model->training = false;
    auto h = model->hidden(last_ids, last_pos, last_attend);
    model->training = was;
    auto flat = last_labels.view({-1});
    auto rows = (flat != kIgnoreLabel).nonzero().squeeze(1).to(h.device());
    auto sel = h.view({-1, h.size(-1)}).index_select(0, rows);
    // In chunks, as the loss: H = -sum p log p per row.
    const int64_t chunk = auto_chunk_rows(model->config().vocab_size);
    std::vector<torch::Tensor> parts;
    for (int64_t i = 0; i < sel.size(0); i += chunk) {
      auto lp = torch::log_softmax(model->logits(sel.slice(0, i, std::min(sel.size(0), i + chunk))).to(torch::kFloat), -1);
      parts.push_back(-(lp.exp() * lp).sum(-1));
    }
    train_entropy_buf = parts.empty() ? torch::zeros({0}) : torch::cat(parts).to(torch::kCPU).contiguous();
    return dl_view(train_entropy_buf, shape_buf);
  }
  std::vector<keel_checkpoint_info_t> checkpoints() override {
    ckpts_ = list_checkpoints(checkpoint_dir);
    paths_.clear();
    for (const auto &c : ckpts_) paths_.push_back(c.path.string());
    std::vector<keel_checkpoint_info_t> out;
    for (size_t i = 0; i < ckpts_.size(); ++i)
      out.push_back({sizeof(keel_checkpoint_info_t), ckpts_[i].step, ckpts_[i].healthy ? 1 : 0, paths_[i].c_str(),
                     ckpts_[i].step == best_step ? 1 : 0});
    return out;
  }
  void request_rollback(const std::string &reason, int64_t to_step) override {
    bool any = false;
    for (const auto &c : list_checkpoints(checkpoint_dir)) any = any || (to_step < 0 ? c.healthy : c.step == to_step);
    if (!any)
      throw ServiceError{KEEL_NOT_FOUND, to_step < 0 ? "no healthy checkpoint to roll back to yet"
                                                     : fmt::format("no checkpoint of step {} to roll back to", to_step)};
    rollback_reason = reason;
    rollback_step = to_step;
  }
  int64_t best_step = -1;  // the checkpoint [run] keep_best keeps
  dist::Group *group = nullptr;  // data parallelism; null in a single process
  void all_reduce_sum(double *values, uint32_t n) override {
    if (group) group->all_reduce_sum(values, n);
  }

 private:
  std::vector<CheckpointRecord> ckpts_;
  std::vector<std::string> paths_;
};

// ---- the run --------------------------------------------------------------------------------------

class Trainer {
 public:
  Trainer(const PipelineConfig &cfg, const PluginRegistry &reg, const TrainOptions &opt, dist::Group *group = nullptr)
      : cfg_(cfg), opt_(opt), group_(group), main_(!group || group->rank() == 0) {
    const auto &d = cfg.doc;
    steps_ = *d["run"]["steps"].value<int64_t>();
    batch_ = *d["run"]["batch_size"].value<int64_t>();
    accum_ = *d["run"]["grad_accum"].value<int64_t>();
    seq_len_ = *d["run"]["seq_len"].value<int64_t>();
    seed_ = static_cast<uint64_t>(*d["run"]["seed"].value<int64_t>());
    ckpt_every_ = *d["run"]["checkpoint_every"].value<int64_t>();
    eval_every_ = *d["run"]["eval_every"].value<int64_t>();
    log_every_ = *d["run"]["log_every"].value<int64_t>();
    keep_last_ = *d["run"]["keep_last"].value<int64_t>();
    packing_ = *d["run"]["packing"].value<bool>();
    chunk_rows_ = *d["run"]["loss_chunk_rows"].value<int64_t>();
    max_nonfinite_ = *d["run"]["max_nonfinite"].value<int64_t>();
    best_metric_ = *d["run"]["keep_best"].value<std::string>();
    best_max_ = *d["run"]["keep_best_mode"].value<std::string>() == "max";
    if (*d["run"]["export_best"].value<bool>() && best_metric_.empty())
      throw UserError(cfg.file.string() + ": [run] export_best needs keep_best = \"<metric>\"");
    if (batch_ % accum_ != 0)
      throw UserError(fmt::format("{}: [run] batch_size {} must be a multiple of grad_accum {}", cfg.file.string(), batch_, accum_));
    world_ = group_ ? group_->world() : 1;
    if (batch_ % (accum_ * world_) != 0)
      throw UserError(fmt::format("{}: [run] batch_size {} must be a multiple of grad_accum {} x {} processes (each takes "
                                  "an equal share of every batch)",
                                  cfg.file.string(), batch_, accum_, world_));
    if (group_ && *d["run"]["activation_checkpointing"].value<bool>())
      throw UserError(fmt::format("{}: [run] activation_checkpointing is not supported with several processes yet (its "
                                  "recomputing backward would hand c10d's Reducer the gradients out of its own pass)",
                                  cfg.file.string()));
    const std::string model_path = *d["model"]["path"].value<std::string>();
    if (model_path.empty()) throw UserError(cfg.file.string() + ": [model] path is required to train");
    if (!d["data"].as_table() || d["data"].as_table()->empty())
      throw UserError(cfg.file.string() + ": at least one [data.<name>] source is required to train");

    run_dir_ = cfg.run_dir();
    fs::create_directories(run_dir_);
    if (main_) logging::add_run_log(run_dir_);  // rank 0 writes every file of the run
    torch::manual_seed(static_cast<int64_t>(seed_));

    // Model (fp32 master weights), tokenizer, template, data, probes.
    device_ = parse_device(*d["model"]["device"].value<std::string>());
    if (group_ && device_.is_cuda()) device_ = torch::Device(torch::kCUDA, static_cast<int8_t>(group_->local_rank()));
    compute_dtype_ = parse_dtype(*d["model"]["dtype"].value<std::string>(), device_);
    model_dir_ = model_path;
    spdlog::info("loading {} on {}", model_path, device_.str());
    model_ = load_model(model_path, device_, torch::kFloat);
    model_->activation_checkpointing = *d["run"]["activation_checkpointing"].value<bool>();
    if (model_->has_lora())
      throw UserError(fmt::format("[model] path {} is a LoRA adapter folder: train from its base model, or from a "
                                  "merged export (lora's export = \"merged\")", model_path));
    tok_ = std::make_unique<Tokenizer>(Tokenizer::load(model_path));
    tmpl_ = std::make_unique<ChatTemplate>(ChatTemplate::resolve(*d["model"]["chat_template"].value<std::string>(), *tok_,
                                                                 to_json_value(*d["model"]["template_kwargs"].node()),
                                                                 *d["model"]["chat_template_name"].value<std::string>()));
    if (tmpl_->resolved())
      spdlog::info("chat template: {}; assistant tokens found by {}", tmpl_->name(), tmpl_->mask_method());
    const fs::path cache = fs::path(*d["run"]["output_dir"].value<std::string>()) / ".cache";
    uint64_t k = 0;
    for (auto &&[name, src] : *d["data"].as_table()) {
      Dataset ds = load_dataset(std::string(name.str()), *src.as_table(), *tok_, *tmpl_, seq_len_, cache);
      spdlog::info("data.{}: {} examples, {} tokens{}", ds.name, ds.examples.size(), ds.stats.tokens,
                   ds.from_cache ? " (cached)" : "");
      stats_.push_back(ds.stats);
      if (probes_.empty()) take_probes(ds);
      sources_.add(std::move(ds), seed_ + 1000003 * ++k);
    }
    load_probe_file();
    // Held-out sets, each a loss at every evaluation: [eval] data gives eval_loss (what the run
    // learned), each [eval.NAME] data gives eval_loss.NAME (e.g. general text: what it forgot).
    auto add_held_out = [&](const std::string &metric, const std::string &path) {
      toml::table src{{"path", path}};
      Dataset ds = load_dataset(metric == "eval_loss" ? "eval" : metric, src, *tok_, *tmpl_, seq_len_, cache);
      spdlog::info("{}: {} held-out examples, {} tokens", metric, ds.examples.size(), ds.stats.tokens);
      held_out_.emplace_back(metric, std::move(ds.examples));
    };
    if (const std::string held = *d["eval"]["data"].value<std::string>(); !held.empty()) add_held_out("eval_loss", held);
    for (auto &&[name, set] : *d["eval"].as_table())
      if (set.is_table()) add_held_out("eval_loss." + std::string(name.str()), *set.as_table()->get("data")->value<std::string>());
    // Generation ends at the tokenizer's and the model's EOS and at the template's end of turn.
    std::vector<int64_t> stops(model_->config().eos_token_ids);
    if (tok_->eos_id) stops.push_back(*tok_->eos_id);
    for (const char *eot : {"<|im_end|>", "<|eot_id|>"})
      if (auto id = tok_->find_token(eot)) stops.push_back(*id);
    for (int64_t id : stops)
      if (std::find(stop_ids_.begin(), stop_ids_.end(), id) == stop_ids_.end()) stop_ids_.push_back(id);

    services_.model = model_.get();
    services_.sources_ = &sources_;
    services_.checkpoint_dir = run_dir_ / "checkpoints";
    services_.context = "training";
    services_.total_steps = steps_;
    services_.seed = seed_;
    services_.run_dir = run_dir_.string();
    services_.group = group_;
    services_.rank = group_ ? group_->rank() : 0;
    services_.world_size = static_cast<int32_t>(world_);
    services_.base_lr = *d["optim"]["lr"].value<double>();
    services_.generation = {sizeof(keel_generation_settings_t), *d["eval"]["temperature"].value<double>(),
                            *d["eval"]["top_p"].value<double>(), static_cast<int32_t>(*d["eval"]["top_k"].value<int64_t>()),
                            *d["eval"]["repetition_penalty"].value<double>(),
                            static_cast<int32_t>(*d["eval"]["max_new_tokens"].value<int64_t>())};
    eval_seed_ = static_cast<uint64_t>(*d["eval"]["seed"].value<int64_t>());
    pipeline_ = std::make_unique<PluginPipeline>(cfg, reg, services_);
    // (Several sources without a data plugin were refused before the model loaded: train_cmd.cpp.)
  }

  // keel eval: one evaluation of the loaded model; metrics and alarms, no remedies, no files.
  json eval_only(int64_t step) {
    eval_only_ = true;
    pipeline_->on_start();
    evaluate(step);
    pipeline_->on_end();
    json metrics = json::object(), alarms = json::array();
    for (const auto &[name, m] : services_.metrics) {
      if (m.step != step) continue;
      metrics[name] = m.value;
      if (m.alarm && name.find('.') == std::string::npos) alarms.push_back(name);
    }
    return {{"step", step}, {"metrics", metrics}, {"alarms", alarms}, {"temperature", services_.generation.temperature},
            {"probes", probes_.size()}};
  }

  int run() {
    if (main_) write_resolved_config();
    pipeline_->on_start();
    // The plugins shape the model (dropout, adapters, frozen parameters), then the optimizer takes
    // what trains; a resumed run's weights and state are loaded over that.
    services_.in_model_ready = true;
    pipeline_->on_model_ready();
    services_.in_model_ready = false;
    make_optimizer();
    int64_t start = 0;
    if (opt_.resume) start = resume();  // prepare_run_dir made sure there is a checkpoint
    if (main_) {
      metrics_.open(run_dir_ / "metrics.jsonl", std::ios::app);
      tb_ = std::make_unique<TensorBoardWriter>(run_dir_ / "tensorboard");
    }
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    model_->training = true;
    int64_t step = start, last_saved = -1;
    if (start == 0) {
      evaluate(0);
      if (new_best(0)) save_checkpoint(last_saved = 0);  // the model before training may be the best
    }
    const auto t0 = std::chrono::steady_clock::now();
    int exit_code = 0;
    for (; step < steps_; ++step) {
      // Every rank stops at the same step: a signal reaches them at different moments.
      if (group_ ? group_->any(g_signal != 0) : g_signal != 0) {
        spdlog::warn("signal {}: saving a checkpoint at step {} and stopping", g_signal ? g_signal.load() : SIGTERM, step);
        break;
      }
      services_.step = step;
      const int64_t done = step + 1;
      bool updated = false;  // the optimizer step of `step` happened (or was skipped as non-finite)
      try {
        train_step(step);
        updated = true;
        const bool evaluated = done % eval_every_ == 0 || done == steps_;
        if (evaluated) evaluate(done);
        if (evaluated && group_) check_ranks_agree(done);
        // A model a remedy rolls back is discarded, so it cannot be the best one.
        if (services_.rollback_reason) rollback(done);
        else if (evaluated && new_best(done) && done % ckpt_every_ != 0) save_checkpoint(last_saved = done);
      } catch (const PluginError &) {
        // A plugin failed. Inside the step (LR, batch, loss) nothing consistent exists to save: the
        // last checkpoint stands. After the update (evaluation, remedies) the step is whole: save
        // it, but a second failure while saving never hides the first error.
        if (!updated) {
          spdlog::error("a plugin failed during step {}: that step is not saved; the last checkpoint stands", done);
        } else {
          try {
            save_checkpoint(done);
            spdlog::error("a plugin failed after step {}; checkpoint saved", done);
          } catch (const std::exception &e) {
            spdlog::error("a plugin failed after step {}; the checkpoint after it could not be saved either: {}", done,
                          e.what());
          }
        }
        throw;
      }
      if (done % ckpt_every_ == 0) {
        save_checkpoint(done);
        last_saved = done;
      }
      if (nonfinite_in_row_ >= max_nonfinite_) {
        save_checkpoint(done);
        last_saved = done;
        spdlog::error("{} non-finite steps in a row: stopping (checkpoint saved)", nonfinite_in_row_);
        exit_code = 1;
        ++step;
        break;
      }
      if (services_.stop_reason) {
        spdlog::warn("stop requested by {}", *services_.stop_reason);
        ++step;
        break;
      }
    }
    if (last_saved != step) save_checkpoint(step);
    if (!main_) return exit_code;  // the export, the summary and the report are rank 0's
    if (opt_.progress && isatty(STDERR_FILENO)) std::fputc('\n', stderr);
    if (*cfg_.doc["run"]["export_best"].value<bool>() && services_.best_step >= 0 && services_.best_step != step) {
      for (const auto &c : list_checkpoints(run_dir_ / "checkpoints"))
        if (c.step == services_.best_step) load_weights(c.path);
      spdlog::info("export_best: final/ is the model of step {} ({} = {:.4f})", services_.best_step, best_metric_, best_value_);
    }
    // Final export: on_export in reverse order (dropout off), then an HF folder.
    pipeline_->on_export();
    model_->training = false;
    if (model_->has_lora()) {
      // Adapters still attached: a PEFT folder (peft.PeftModel.from_pretrained(base, final/)).
      const auto trained = trained_base();
      save_peft_folder(run_dir_ / "final", *model_, model_dir_, trained);
      if (!trained.empty())
        spdlog::warn("final/ is a PEFT adapter folder; the {} base parameters trained beside the adapters are in "
                     "final/base_trained.safetensors, which PEFT does not read (merge the adapters to keep them)",
                     trained.size());
    } else {
      save_model(run_dir_ / "final", *model_, model_dir_, compute_dtype_ == torch::kHalf ? torch::kFloat : compute_dtype_);
    }
    tok_->save(run_dir_ / "final");
    pipeline_->on_end();
    summary(step, seconds_since(t0));
    // The run's own report (keel report on this one run); a failure here loses no training.
    try {
      ReportOptions ro;
      ro.title = "keel run: " + run_dir_.filename().string();
      write_report(read_runs({run_dir_}), run_dir_ / "report.html", ro);
      spdlog::info("report: {}", (run_dir_ / "report.html").string());
    } catch (const std::exception &e) {
      spdlog::warn("report.html not written: {}", e.what());
    }
    return exit_code;
  }

 private:
  // ---- setup -------------------------------------------------------------------------------------
  void take_probes(Dataset &ds) {
    const auto &e = cfg_.doc["eval"];
    if (!e["prompts"].value<std::string>()->empty()) return;
    // A fixed, seeded slice of the first source's prompts, removed from training.
    const int64_t want = *e["num_prompts"].value<int64_t>();
    std::vector<size_t> idx;
    for (size_t i = 0; i < ds.examples.size(); ++i)
      if (!ds.prompts[i].empty()) idx.push_back(i);
    std::mt19937_64 rng(seed_ ^ 0x70726f6265ull);
    for (size_t i = idx.size(); i > 1; --i) std::swap(idx[i - 1], idx[rng() % i]);
    if (static_cast<int64_t>(idx.size()) > want) idx.resize(static_cast<size_t>(want));
    if (idx.size() * 2 > ds.examples.size() || idx.empty()) {
      spdlog::warn("data.{}: too few prompts to hold out a probe set; no generations are evaluated (set [eval] prompts)", ds.name);
      return;
    }
    std::sort(idx.begin(), idx.end());
    for (size_t i : idx) probes_.push_back({ds.prompts[i], encode(ds.prompts[i])});
    for (auto it = idx.rbegin(); it != idx.rend(); ++it) {
      ds.examples.erase(ds.examples.begin() + static_cast<long>(*it));
      ds.prompts.erase(ds.prompts.begin() + static_cast<long>(*it));
    }
  }

  void load_probe_file() {
    const std::string file = *cfg_.doc["eval"]["prompts"].value<std::string>();
    if (file.empty()) return;
    std::ifstream in(file);
    if (!in) throw UserError(fmt::format("[eval] prompts: cannot read {}", file));
    std::string line;
    for (int64_t n = 1; std::getline(in, line); ++n) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      json j;
      try {
        j = json::parse(line);
      } catch (const json::exception &) {
        throw UserError(fmt::format("{}:{}: not valid JSON", file, n));
      }
      std::string text;
      if (j.is_object() && j.contains("prompt") && j["prompt"].is_string())
        text = tmpl_->resolved() ? tmpl_->generation_prompt(j["prompt"].get<std::string>()) : j["prompt"].get<std::string>();
      else if (j.is_object() && j.contains("text") && j["text"].is_string())
        text = j["text"].get<std::string>();
      else
        throw UserError(fmt::format("{}:{}: expected {{\"prompt\": \"...\"}} or {{\"text\": \"...\"}}", file, n));
      probes_.push_back({text, encode(text)});
    }
  }

  std::vector<int64_t> encode(const std::string &text) const {
    auto ids = tok_->encode(text, false);
    std::vector<int64_t> out(ids.begin(), ids.end());
    if (out.empty() && tok_->bos_id) out.push_back(*tok_->bos_id);
    if (out.empty()) out.push_back(tok_->eos_id.value_or(0));
    return out;
  }

  // Every parameter and adapter; AdamW keeps moments only for those that get a gradient, so frozen
  // ones cost no optimizer memory and stay bit-identical.
  void make_optimizer() {
    const auto &o = cfg_.doc["optim"];
    std::vector<torch::Tensor> decay, no_decay;
    model_->for_each_tensor([&](const std::string &name, const torch::Tensor &t) {
      const bool nd = name.find("norm") != std::string::npos || name.size() > 5 && name.substr(name.size() - 5) == ".bias";
      (nd ? no_decay : decay).push_back(t);
    });
    auto opts = torch::optim::AdamWOptions(services_.base_lr)
                    .betas({*o["betas"][0].value<double>(), *o["betas"][1].value<double>()})
                    .eps(*o["eps"].value<double>())
                    .weight_decay(*o["weight_decay"].value<double>());
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(opts));
    auto nd = opts;
    nd.weight_decay(0.0);
    groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(nd));
    optim_ = std::make_unique<FusedAdamW>(groups, opts);
    grad_clip_ = *o["grad_clip"].value<double>();
  }

  // Frozen parameters take no gradient this step (no weight-gradient products, nothing to clip or
  // update); the others do.
  void apply_freezing(int64_t step) {
    for (auto it = services_.frozen.begin(); it != services_.frozen.end();)
      it = step >= it->second ? services_.frozen.erase(it) : std::next(it);
    model_->for_each_tensor(
        [&](const std::string &name, const torch::Tensor &t) { t.set_requires_grad(!services_.frozen.count(name)); });
  }

  // Base parameters that train beside LoRA adapters (what an adapter checkpoint must carry).
  std::vector<std::pair<std::string, torch::Tensor>> trained_base() const {
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (const auto &[name, t] : model_->parameters()) {
      auto it = services_.frozen.find(name);
      if (it == services_.frozen.end() || it->second != TrainerServices::kForever) out.emplace_back(name, t.detach());
    }
    return out;
  }

  void write_resolved_config() {
    std::ofstream out(run_dir_ / "config.toml");
    out << "# resolved by keel: every default filled in\n" << pipeline_->resolved_config() << "\n";
  }

  // ---- one optimizer step --------------------------------------------------------------------------
  void train_step(int64_t step) {
    const auto t0 = std::chrono::steady_clock::now();
    reset_peak_rss();
    apply_freezing(step);
    if (group_) {
      std::vector<torch::Tensor> trainable;
      model_->for_each_tensor([&](const std::string &, const torch::Tensor &t) {
        if (t.requires_grad()) trainable.push_back(t);
      });
      group_->watch_gradients(trainable);
    }
    const double lr = pipeline_->lr(step, services_.base_lr);
    for (auto &g : optim_->param_groups()) static_cast<torch::optim::AdamWOptions &>(g.options()).lr(lr);

    // Which source fills each slot of the global batch, then the examples, grouped by length.
    std::vector<uint32_t> slots(static_cast<size_t>(batch_), 0);
    if (pipeline_->data_plugin()) slots = pipeline_->compose_batch(step, static_cast<uint32_t>(batch_), sources_.infos());
    std::vector<const Example *> batch;
    for (uint32_t s : slots) batch.push_back(&sources_.next(s));
    std::stable_sort(batch.begin(), batch.end(), [](auto *a, auto *b) { return a->ids.size() < b->ids.size(); });
    int64_t counted = 0, tokens = 0;
    for (auto *e : batch) {
      tokens += static_cast<int64_t>(e->ids.size());
      for (size_t i = 1; i < e->labels.size(); ++i) counted += e->labels[i] != kIgnoreLabel;
    }
    // Every rank composed the same global batch (same cursors, same plugin); each takes every
    // world-th example of it, by length, so the shares are of about equal work. Each rank's loss is
    // scaled by the global count, so the summed gradients are the single-process gradient.
    if (group_) {
      std::vector<const Example *> mine;
      for (size_t i = static_cast<size_t>(group_->rank()); i < batch.size(); i += static_cast<size_t>(world_))
        mine.push_back(batch[i]);
      batch.swap(mine);
    }

    double loss_sum = 0;
    step_rows_ = 0;
    const int64_t micro = batch_ / world_ / accum_;
    for (int64_t m = 0; m < accum_; ++m) {
      std::vector<const Example *> mb(batch.begin() + m * micro, batch.begin() + (m + 1) * micro);
      if (group_ && m + 1 == accum_) group_->expect_backward();  // the gradients sum in the last backward
      loss_sum += micro_batch(mb, counted);
    }
    if (group_) {
      std::vector<double> v{loss_sum, static_cast<double>(step_rows_)};
      group_->all_reduce_sum(v);
      loss_sum = v[0];
      step_rows_ = static_cast<int64_t>(v[1]);
    }
    const double loss = counted ? loss_sum / static_cast<double>(counted) : 0.0;
    std::vector<torch::Tensor> grads;  // frozen parameters have none: not clipped, not updated
    model_->for_each_tensor([&](const std::string &, const torch::Tensor &t) {
      if (t.grad().defined()) grads.push_back(t.grad());
    });
    const double norm = clip_grad_norm(grads, grad_clip_);
    bool finite = std::isfinite(loss) && std::isfinite(norm);
    if (step >= force_nonfinite_from_ && step <= force_nonfinite_to_) finite = false;
    if (finite) {
      optim_->step();
      nonfinite_in_row_ = 0;
    } else {
      ++skipped_;
      ++nonfinite_in_row_;
      spdlog::warn("step {}: non-finite loss or gradient (loss {}, grad norm {}): step skipped", step, loss, norm);
      raise_alarm("nonfinite", loss, step + 1, "loss or gradient is not finite");
    }
    optim_->zero_grad();
    tokens_ += tokens;
    const double secs = seconds_since(t0);
    train_secs_ += secs;
    ema_loss_ = step == 0 ? loss : 0.9 * ema_loss_ + 0.1 * loss;
    const int64_t done = step + 1;
    if (done % log_every_ == 0 || done == steps_ || !finite) {
      json row = {{"step", done}, {"loss", loss}, {"lr", lr}, {"grad_norm", norm}, {"tokens_per_s", tokens / secs},
                  {"rows", step_rows_}};
      if (const double mb = peak_rss_mb(); mb > 0) row["peak_rss_mb"] = mb;
      if (!finite) row["skipped"] = true;
      log_row(row);
      for (const char *k : {"loss", "lr", "grad_norm", "tokens_per_s"}) scalar(std::string("train/") + k, row[k].get<double>(), done);
      if (!opt_.progress || !isatty(STDERR_FILENO))
        spdlog::info("step {}/{}  loss {:.4f}  lr {:.3e}  grad_norm {:.3f}  {:.0f} tok/s", done, steps_, loss, lr, norm, tokens / secs);
    }
    if (opt_.progress && isatty(STDERR_FILENO)) {
      const double eta = (steps_ - done) * (train_secs_ + eval_secs_) / std::max<int64_t>(1, done - resumed_at_);
      std::fprintf(stderr, "\r[%lld/%lld] loss %.4f  lr %.2e  %.0f tok/s  ETA %.0fs   ", static_cast<long long>(done),
                   static_cast<long long>(steps_), ema_loss_, lr, tokens / secs, eta);
      std::fflush(stderr);
    }
  }

  // Forward, chunked loss and backward for one micro-batch; returns its loss sum.
  double micro_batch(const std::vector<const Example *> &mb, int64_t global_count) {
    // Rows: one example each, or with run.packing several per row (first fit, longest first), each
    // example with its own positions and a block-diagonal causal mask so none sees another.
    std::vector<std::vector<const Example *>> rows_of;
    std::vector<int64_t> used;
    std::vector<const Example *> order(mb);
    if (packing_) std::stable_sort(order.begin(), order.end(), [](auto *a, auto *b) { return a->ids.size() > b->ids.size(); });
    for (auto *e : order) {
      const int64_t n = static_cast<int64_t>(e->ids.size());
      size_t r = rows_of.size();
      if (packing_)
        for (size_t k = 0; k < rows_of.size(); ++k)
          if (used[k] + n <= seq_len_) {
            r = k;
            break;
          }
      if (r == rows_of.size()) {
        rows_of.emplace_back();
        used.push_back(0);
      }
      rows_of[r].push_back(e);
      used[r] += n;
    }
    const int64_t B = static_cast<int64_t>(rows_of.size());
    const int64_t T = *std::max_element(used.begin(), used.end());
    step_rows_ += B;
    const int64_t pad = tok_->pad_id.value_or(tok_->eos_id.value_or(0));
    auto ids = torch::full({B, T}, pad, torch::kInt64);
    auto labels = torch::full({B, T}, static_cast<int64_t>(kIgnoreLabel), torch::kInt64);
    auto pos = torch::zeros({B, T}, torch::kInt64);
    auto lengths = torch::ones({B, T}, torch::kFloat);  // each token's example length (NEFTune)
    torch::Tensor attend = packing_ ? torch::eye(T, torch::kBool).repeat({B, 1, 1}) : torch::Tensor();
    auto ia = ids.accessor<int64_t, 2>();
    auto la = labels.accessor<int64_t, 2>();
    auto pa = pos.accessor<int64_t, 2>();
    auto na = lengths.accessor<float, 2>();
    for (int64_t b = 0; b < B; ++b) {
      int64_t off = 0;
      for (const Example *e : rows_of[b]) {
        const int64_t n = static_cast<int64_t>(e->ids.size());
        for (int64_t i = 0; i < n; ++i) {
          ia[b][off + i] = e->ids[i];
          pa[b][off + i] = i;
          na[b][off + i] = static_cast<float>(n);
          if (i + 1 < n) la[b][off + i] = e->labels[i + 1];  // predict the next token of this example
        }
        if (packing_) {
          using torch::indexing::Slice;
          attend.index_put_({b, Slice(off, off + n), Slice(off, off + n)},
                            torch::ones({n, n}, torch::kBool).tril());
        }
        off += n;
      }
    }
    if (packing_) attend = attend.unsqueeze(1).to(device_);
    services_.last_ids = ids.to(device_);
    services_.last_pos = pos.to(device_);
    services_.last_attend = attend;
    services_.last_labels = labels;
    auto flat = labels.view({-1});
    auto rows = (flat != kIgnoreLabel).nonzero().squeeze(1);
    if (rows.numel() == 0) {
      // Nothing to learn here; under data parallelism this rank's backward still has to run, with
      // zero gradients, so that the all-reduce the others wait in completes.
      if (group_) zero_backward();
      return 0.0;
    }
    torch::Tensor hidden;
    {
      AutocastScope ac(device_, compute_dtype_);
      hidden = model_->hidden(ids.to(device_), pos.to(device_), attend, nullptr, lengths);
    }
    auto sel = hidden.view({B * T, -1}).index_select(0, rows.to(device_));
    auto lab = flat.index_select(0, rows).to(device_);
    ChunkLossFn fn = cross_entropy_chunk;
    if (pipeline_->loss_plugin())
      fn = [this](const torch::Tensor &logits, const torch::Tensor &l, torch::Tensor &g) {
        std::vector<int64_t> s1, s2, s3;
        DLTensor dl = dl_view(logits, s1), dlab = dl_view(l, s2), dg = dl_view(g, s3);
        return pipeline_->loss(dl, dlab, dg);
      };
    auto head = model_->lm_head_weight();
    const int64_t chunk = chunk_rows_ > 0 ? chunk_rows_ : auto_chunk_rows(head.size(0));
    auto r = chunked_loss_backward(sel, lab, head, 1.0 / static_cast<double>(global_count), chunk, fn);
    return r.loss_sum;
  }

  void zero_backward() {
    std::vector<torch::Tensor> roots, zeros;
    model_->for_each_tensor([&](const std::string &, const torch::Tensor &t) {
      if (!t.requires_grad()) return;
      roots.push_back(t);
      zeros.push_back(torch::zeros_like(t));
    });
    if (!roots.empty()) torch::autograd::backward(roots, zeros);
  }

  // bf16/fp16 autocast on CUDA; fp32 elsewhere.
  struct AutocastScope {
    bool on = false;
    AutocastScope(torch::Device d, torch::Dtype t) {
      if (d.is_cuda() && t != torch::kFloat) {
        at::autocast::set_autocast_enabled(at::kCUDA, true);
        at::autocast::set_autocast_dtype(at::kCUDA, t);
        on = true;
      }
    }
    ~AutocastScope() {
      if (on) {
        at::autocast::set_autocast_enabled(at::kCUDA, false);
        at::autocast::clear_cache();
      }
    }
  };

  // ---- evaluation, alarms, remedies ---------------------------------------------------------------
  // Mean loss per trained token of the held-out set, teacher-forced, in eval mode (no dropout).
  double held_out_loss(const std::vector<Example> &held_out_) {
    torch::NoGradGuard no_grad;
    const auto head = model_->lm_head_weight();
    double sum = 0;
    int64_t count = 0;
    const size_t per_batch = 8;
    // Under data parallelism each rank scores every world-th batch; the sums are added up.
    const size_t first = group_ ? per_batch * static_cast<size_t>(group_->rank()) : 0;
    const size_t stride = per_batch * static_cast<size_t>(world_);
    for (size_t i = first; i < held_out_.size(); i += stride) {
      const size_t n = std::min(per_batch, held_out_.size() - i);
      int64_t T = 0;
      for (size_t k = 0; k < n; ++k) T = std::max<int64_t>(T, static_cast<int64_t>(held_out_[i + k].ids.size()));
      const int64_t B = static_cast<int64_t>(n);
      auto ids = torch::full({B, T}, tok_->pad_id.value_or(tok_->eos_id.value_or(0)), torch::kInt64);
      auto labels = torch::full({B, T}, static_cast<int64_t>(kIgnoreLabel), torch::kInt64);
      auto ia = ids.accessor<int64_t, 2>();
      auto la = labels.accessor<int64_t, 2>();
      for (size_t k = 0; k < n; ++k) {
        const Example &e = held_out_[i + k];
        for (size_t t = 0; t < e.ids.size(); ++t) {
          ia[static_cast<int64_t>(k)][static_cast<int64_t>(t)] = e.ids[t];
          if (t + 1 < e.ids.size()) la[static_cast<int64_t>(k)][static_cast<int64_t>(t)] = e.labels[t + 1];
        }
      }
      auto pos = torch::arange(T, torch::kInt64).repeat({B, 1});
      torch::Tensor hidden;
      {
        AutocastScope ac(device_, compute_dtype_);
        hidden = model_->hidden(ids.to(device_), pos.to(device_));
      }
      auto flat = labels.view({-1});
      auto rows = (flat != kIgnoreLabel).nonzero().squeeze(1);
      if (rows.numel() == 0) continue;
      auto sel = hidden.view({B * T, -1}).index_select(0, rows.to(device_));
      auto lab = flat.index_select(0, rows).to(device_);
      const int64_t chunk = auto_chunk_rows(head.size(0));
      for (int64_t a = 0; a < sel.size(0); a += chunk) {
        const int64_t b = std::min(sel.size(0), a + chunk);
        auto logits = torch::matmul(sel.slice(0, a, b).to(torch::kFloat), head.to(torch::kFloat).t());
        sum += torch::nn::functional::cross_entropy(
                   logits, lab.slice(0, a, b), torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                   .item<double>();
      }
      count += sel.size(0);
    }
    if (group_) {
      std::vector<double> v{sum, static_cast<double>(count)};
      group_->all_reduce_sum(v);
      sum = v[0];
      count = static_cast<int64_t>(v[1]);
    }
    return count ? sum / static_cast<double>(count) : 0.0;
  }

  void evaluate(int64_t step) {
    if (probes_.empty() && held_out_.empty()) return;
    const auto t0 = std::chrono::steady_clock::now();
    const bool was = model_->training;
    model_->training = false;
    for (const auto &[metric, examples] : held_out_) {
      const double l = held_out_loss(examples);
      services_.metrics[metric] = {l, false, "", step, "keel"};
      services_.metrics[metric + ".ppl"] = {std::exp(l), false, "", step, "keel"};
    }
    SamplingSettings s;
    const auto &g = services_.generation;
    s.temperature = g.temperature;
    s.top_p = g.top_p;
    s.top_k = g.top_k;
    s.repetition_penalty = g.repetition_penalty;
    s.max_new_tokens = g.max_new_tokens;
    s.seed = eval_seed_;  // fixed, so evaluations compare
    s.stop_ids = stop_ids_;
    std::vector<std::vector<int64_t>> prompts;
    for (const auto &p : probes_) prompts.push_back(p.ids);
    std::vector<Generation> gens;  // (none without probes: the held-out loss alone)
    const int64_t eval_batch = 64;
    for (size_t i = 0; i < prompts.size(); i += eval_batch) {
      std::vector<std::vector<int64_t>> part(prompts.begin() + static_cast<long>(i),
                                             prompts.begin() + static_cast<long>(std::min(prompts.size(), i + eval_batch)));
      auto out = generate(*model_, part, s);
      gens.insert(gens.end(), out.begin(), out.end());
    }
    // Samples file and the plugins' view of them.
    std::ofstream samples;
    if (!eval_only_ && main_) {
      fs::create_directories(run_dir_ / "samples");
      samples.open(run_dir_ / "samples" / fmt::format("step-{:06d}.jsonl", step));
    }
    std::vector<std::string> texts;
    std::vector<keel_eval_sample_t> cs(gens.size());
    std::vector<const keel_eval_sample_t *> ptrs;
    services_.eval_prompts = prompts;
    services_.eval_outputs.clear();
    for (size_t i = 0; i < gens.size(); ++i) {
      std::vector<int32_t> ids(gens[i].tokens.begin(), gens[i].tokens.end());
      texts.push_back(tok_->decode(ids, true));
      services_.eval_outputs.push_back(gens[i].tokens);
      samples << json{{"prompt", probes_[i].prompt}, {"text", texts.back()}, {"tokens", gens[i].tokens}}.dump() << "\n";
    }
    for (size_t i = 0; i < gens.size(); ++i) {
      cs[i] = {sizeof(keel_eval_sample_t), probes_[i].prompt.c_str(), texts[i].c_str(), gens[i].tokens.data(),
               gens[i].tokens.size()};
      ptrs.push_back(&cs[i]);
    }
    keel_eval_batch_t batch{sizeof(keel_eval_batch_t), step, s.temperature, ptrs.data(), static_cast<uint32_t>(ptrs.size())};
    services_.step = step;
    if (!probes_.empty()) pipeline_->on_eval(batch);
    model_->training = was;
    eval_secs_ += seconds_since(t0);

    // Metrics of this evaluation: to metrics.jsonl and TensorBoard; alarms that start or clear.
    json row = {{"step", step}, {"eval", true}, {"temperature", s.temperature}, {"eval_seconds", seconds_since(t0)}};
    json alarms = json::array();
    std::vector<std::pair<std::string, MetricValue>> raised;
    for (auto &[name, m] : services_.metrics) {
      if (m.step != step) continue;
      row[name] = m.value;
      scalar("eval/" + name, m.value, step);
      if (name.find('.') != std::string::npos) continue;  // side values do not alarm
      if (m.alarm) {
        alarms.push_back(name);
        raised.emplace_back(name, m);
      } else if (active_alarms_.erase(name)) {
        spdlog::info("alarm cleared: {} = {:.4f} at step {}", name, m.value, step);
      }
    }
    scalar("eval/temperature", s.temperature, step);
    row["alarms"] = alarms;
    healthy_ = alarms.empty();
    if (eval_only_) return;
    log_row(row);  // before the remedies act, so the row is there even if one of them fails
    for (const auto &[name, m] : raised) raise_alarm(name, m.value, step, m.reason);
    if (!firings_.empty()) log_row({{"step", step}, {"remedies", firings_}});
    firings_ = json::array();
  }

  // An alarm is dispatched to the remedies at every evaluation while it lasts (their cooldown and
  // max_fires decide whether they act); the console says when it starts and when it clears.
  void raise_alarm(const std::string &metric, double value, int64_t step, const std::string &reason) {
    if (active_alarms_.insert(metric).second) {
      ++alarm_count_;
      spdlog::warn("alarm: {} = {:.4f} at step {} ({})", metric, value, step, reason);
    }
    keel_alarm_t a{sizeof(keel_alarm_t), metric.c_str(), value, step, reason.c_str()};
    for (const RemedyFiring &f : pipeline_->alarm(a)) {
      ++remedy_count_;
      spdlog::warn("remedy: {} fired by {} at step {}", f.remedy, f.metric, f.step);
      firings_.push_back({{"remedy", f.remedy}, {"alarm", f.metric}, {"step", f.step}});
      scalar("remedy/" + f.remedy, 1.0, step);
    }
    if (metric == "nonfinite") {
      json row = {{"step", step}, {"alarms", {metric}}, {"remedies", firings_}};
      log_row(row);
      firings_ = json::array();
      active_alarms_.erase(metric);
    }
  }

  // Every rank evaluates the same model on the same probes, so the metrics, alarms and remedies
  // agree; a rank whose decisions differ (a plugin drawing its own randomness) stops the run
  // rather than letting the replicas drift apart.
  void check_ranks_agree(int64_t step) {
    const std::vector<double> mine{static_cast<double>(active_alarms_.size()), services_.rollback_reason ? 1.0 : 0.0,
                                   services_.stop_reason ? 1.0 : 0.0, services_.base_lr,
                                   services_.generation.temperature};
    std::vector<double> sum(mine);
    group_->all_reduce_sum(sum);
    for (size_t i = 0; i < mine.size(); ++i)
      if (std::abs(sum[i] - mine[i] * static_cast<double>(world_)) > 1e-9 * std::max(1.0, std::abs(sum[i])))
        throw GroupError(fmt::format("step {}: the ranks disagree after the evaluation ({} differs on rank {}): a plugin "
                                    "decided differently on different processes",
                                    step, std::array<const char *, 5>{"alarms", "rollback", "stop", "base LR", "temperature"}[i],
                                    group_->rank()));
  }

  // ---- checkpoints, resume, rollback ----------------------------------------------------------------
  void save_checkpoint(int64_t step) {
    if (!main_) return;  // every rank holds the same weights and state: rank 0 writes them
    const auto states = pipeline_->save_states();
    json st = {{"step", step},
               {"healthy", healthy_},
               {"data", sources_.state()},
               {"base_lr", services_.base_lr},
               {"generation", {{"temperature", services_.generation.temperature}, {"top_p", services_.generation.top_p},
                               {"top_k", services_.generation.top_k}, {"max_new_tokens", services_.generation.max_new_tokens},
                               {"repetition_penalty", services_.generation.repetition_penalty}}},
               {"skipped", skipped_},
               {"nonfinite_in_row", nonfinite_in_row_},
               {"rollbacks", rollbacks_},
               {"alarms", std::vector<std::string>(active_alarms_.begin(), active_alarms_.end())},
               {"tokens", tokens_},
               {"frozen", services_.frozen},
               {"best", {{"metric", best_metric_}, {"value", best_value_}, {"step", services_.best_step}}},
               {"embedding_noise", model_->dropout.neftune_alpha}};
    json remedies = json::array();
    for (const auto &p : pipeline_->plugins())
      remedies.push_back({{"fires", p->remedy.fires}, {"last_fired", p->remedy.last_fired}});
    st["remedies"] = remedies;
    json metrics = json::object();
    for (const auto &[n, m] : services_.metrics) metrics[n] = {{"value", m.value}, {"alarm", m.alarm}, {"step", m.step}};
    st["metrics"] = metrics;
    const bool was = model_->training;
    write_checkpoint(run_dir_ / "checkpoints", step, [&](const fs::path &dir) {
      // With LoRA only the adapters and what trains beside them: the base is the model folder's.
      if (model_->has_lora()) save_peft_folder(dir, *model_, model_dir_, trained_base());
      else save_model(dir, *model_, model_dir_, torch::kFloat);
      tok_->save(dir);
      // Test seam: hold the write half-done so a test can kill -9 the process inside it.
      if (const char *pause = std::getenv("KEEL_TEST_CHECKPOINT_PAUSE")) ::usleep(static_cast<useconds_t>(std::atof(pause) * 1e6));
      torch::save(*optim_, (dir / "optimizer.pt").string());
      torch::save(at::detail::getDefaultCPUGenerator().get_state(), (dir / "rng.pt").string());
      write_blobs(dir / "plugin_state.bin", states);
      std::ofstream out(dir / "trainer_state.json");
      out << st.dump(2) << "\n";
      out.close();
      if (!out) throw UserError(fmt::format("cannot write {} (disk full?)", (dir / "trainer_state.json").string()));
    });
    model_->training = was;
    prune_checkpoints(run_dir_ / "checkpoints", keep_last_, services_.best_step);
    spdlog::debug("checkpoint at step {}", step);
  }

  // Loads weights and optimizer moments from a checkpoint folder.
  void load_weights(const fs::path &dir) {
    verify_checkpoint(dir);
    const bool adapters = fs::exists(dir / "adapter_model.safetensors");
    if (adapters != model_->has_lora())
      throw UserError(fmt::format("{} holds {}, but this pipeline {}: resume with the pipeline that wrote it", dir.string(),
                                  adapters ? "LoRA adapters" : "a full model", model_->has_lora() ? "attaches LoRA adapters" : "has no lora"));
    if (adapters) {
      load_peft_tensors(dir, *model_);
    } else {
      auto m = load_model(dir, device_, torch::kFloat);
      torch::NoGradGuard g;
      for (size_t i = 0; i < m->parameters().size(); ++i) model_->parameters()[i].second.copy_(m->parameters()[i].second);
    }
    torch::load(*optim_, (dir / "optimizer.pt").string());
  }

  int64_t resume() {
    auto all = list_checkpoints(run_dir_ / "checkpoints");
    if (all.empty()) throw UserError(fmt::format("--resume: no checkpoint in {}", (run_dir_ / "checkpoints").string()));
    const auto &c = all.back();
    load_weights(c.path);
    torch::Tensor rng;
    torch::load(rng, (c.path / "rng.pt").string());
    at::Generator gen = at::detail::getDefaultCPUGenerator();
    gen.set_state(rng);
    std::ifstream in(c.path / "trainer_state.json");
    json st = json::parse(in);
    sources_.load_state(st["data"]);
    services_.base_lr = st["base_lr"].get<double>();
    const auto &g = st["generation"];
    services_.generation.temperature = g["temperature"].get<double>();
    services_.generation.top_p = g["top_p"].get<double>();
    services_.generation.top_k = g["top_k"].get<int32_t>();
    services_.generation.max_new_tokens = g["max_new_tokens"].get<int32_t>();
    services_.generation.repetition_penalty = g["repetition_penalty"].get<double>();
    skipped_ = st["skipped"].get<int64_t>();
    nonfinite_in_row_ = st["nonfinite_in_row"].get<int64_t>();
    rollbacks_ = st["rollbacks"].get<int64_t>();
    tokens_ = st["tokens"].get<int64_t>();
    services_.frozen = st["frozen"].get<std::map<std::string, int64_t>>();
    if (st.contains("best") && st["best"]["metric"] == best_metric_) {
      best_value_ = st["best"]["value"].get<double>();
      services_.best_step = st["best"]["step"].get<int64_t>();
    }
    healthy_ = st["healthy"].get<bool>();
    for (const auto &a : st["alarms"]) active_alarms_.insert(a.get<std::string>());
    for (size_t i = 0; i < pipeline_->plugins().size() && i < st["remedies"].size(); ++i) {
      pipeline_->plugins()[i]->remedy.fires = st["remedies"][i]["fires"].get<int64_t>();
      pipeline_->plugins()[i]->remedy.last_fired = st["remedies"][i]["last_fired"].get<int64_t>();
    }
    for (auto &[n, m] : st["metrics"].items())
      services_.metrics[n] = MetricValue{m["value"].get<double>(), m["alarm"].get<bool>(), "", m["step"].get<int64_t>(), ""};
    pipeline_->load_states(read_blobs(c.path / "plugin_state.bin"));
    resumed_at_ = c.step;
    spdlog::info("resumed from {} (step {})", c.path.string(), c.step);
    return c.step;
  }

  void rollback(int64_t step) {
    const std::string reason = *services_.rollback_reason;
    services_.rollback_reason.reset();
    const int64_t to_step = std::exchange(services_.rollback_step, -1);
    const CheckpointRecord *target = nullptr;
    auto all = list_checkpoints(run_dir_ / "checkpoints");
    for (const auto &c : all)
      if (to_step < 0 ? c.healthy : c.step == to_step) target = &c;
    if (!target) return;  // request_rollback refused this already
    load_weights(target->path);
    ++rollbacks_;
    active_alarms_.clear();  // the restored model had none
    spdlog::warn("rollback: weights and optimizer restored from step {} (at step {}; {})", target->step, step, reason);
    log_row({{"step", step}, {"rollback", {{"to", target->step}, {"reason", reason}}}});
    scalar("rollback", static_cast<double>(target->step), step);
  }

  // keep_best: whether the metric, as this evaluation at `step` left it, is the best so far (then
  // that step's checkpoint is kept). A metric that was not published at this step changes nothing.
  bool new_best(int64_t step) {
    if (best_metric_.empty() || eval_only_) return false;
    auto it = services_.metrics.find(best_metric_);
    if (it == services_.metrics.end() && !best_warned_) {
      best_warned_ = true;
      std::string known;
      for (const auto &[n, m] : services_.metrics) known += (known.empty() ? "" : ", ") + n;
      spdlog::warn("keep_best: no metric '{}' at step {} (metrics: {})", best_metric_, step, known.empty() ? "none" : known);
    }
    if (it == services_.metrics.end() || it->second.step != step || !std::isfinite(it->second.value)) return false;
    const double v = it->second.value;
    if (services_.best_step >= 0 && (best_max_ ? v <= best_value_ : v >= best_value_)) return false;
    best_value_ = v;
    services_.best_step = step;
    spdlog::info("keep_best: {} = {:.4f} at step {}, the best so far", best_metric_, v, step);
    return true;
  }

  // ---- output --------------------------------------------------------------------------------------
  void scalar(const std::string &tag, double value, int64_t step) {
    if (tb_) tb_->scalar(tag, value, step);
  }

  void log_row(const json &row) {
    if (!main_) return;
    metrics_ << row.dump() << "\n";
    metrics_.flush();
  }

  void summary(int64_t steps_done, double secs) {
    uint64_t bad = 0, truncated = 0, dropped = 0;
    for (const auto &s : stats_) {
      bad += s.bad_lines;
      truncated += s.truncated;
      dropped += s.dropped;
    }
    const double eval_share = secs > 0 ? eval_secs_ / secs : 0;
    spdlog::info("done: {} steps, {} tokens, {:.1f}s ({:.0f}% evaluation), {} alarms, {} remedies, {} rollbacks, "
                 "{} skipped steps, {} bad lines, {} truncated, {} dropped",
                 steps_done, tokens_, secs, 100 * eval_share, alarm_count_, remedy_count_, rollbacks_, skipped_, bad,
                 truncated, dropped);
    spdlog::info("final model: {}", (run_dir_ / "final").string());
    log_row({{"summary", true}, {"steps", steps_done}, {"tokens", tokens_}, {"seconds", secs}, {"eval_share", eval_share},
             {"alarms", alarm_count_}, {"remedies", remedy_count_}, {"rollbacks", rollbacks_}, {"skipped", skipped_},
             {"bad_lines", bad}, {"final", (run_dir_ / "final").string()}});
  }


  const PipelineConfig &cfg_;
  TrainOptions opt_;
  dist::Group *group_ = nullptr;  // null in a single process
  bool main_ = true;              // rank 0, or the only process: the one that writes files
  int64_t world_ = 1;
  int64_t steps_, batch_, accum_, seq_len_, ckpt_every_, eval_every_, log_every_, keep_last_, max_nonfinite_;
  uint64_t seed_, eval_seed_ = 0;
  fs::path run_dir_, model_dir_;
  torch::Device device_{torch::kCPU};
  torch::Dtype compute_dtype_ = torch::kFloat;
  std::unique_ptr<Transformer> model_;
  std::unique_ptr<Tokenizer> tok_;
  std::unique_ptr<ChatTemplate> tmpl_;
  DataSources sources_;
  std::vector<DatasetStats> stats_;
  std::vector<Probe> probes_;
  std::vector<std::pair<std::string, std::vector<Example>>> held_out_;  // metric name, examples
  std::vector<int64_t> stop_ids_;
  TrainerServices services_;
  std::unique_ptr<PluginPipeline> pipeline_;
  std::unique_ptr<FusedAdamW> optim_;
  double grad_clip_ = 1.0;
  std::ofstream metrics_;
  std::unique_ptr<TensorBoardWriter> tb_;
  json firings_ = json::array();
  std::set<std::string> active_alarms_;
  bool healthy_ = true;
  int64_t skipped_ = 0, nonfinite_in_row_ = 0, rollbacks_ = 0, tokens_ = 0, alarm_count_ = 0, remedy_count_ = 0;
  int64_t resumed_at_ = 0;
  std::string best_metric_;  // [run] keep_best
  bool best_max_ = false, best_warned_ = false;
  double best_value_ = 0;
  bool eval_only_ = false;
  bool packing_ = false;
  int64_t chunk_rows_ = 0;
  int64_t step_rows_ = 0;  // sequences the last step ran (fewer than batch_size when packing)
  double train_secs_ = 0, eval_secs_ = 0, ema_loss_ = 0;

 public:
  // Test seam (KEEL_TEST_NONFINITE_STEPS=A or A-B): treat those steps as non-finite.
  int64_t force_nonfinite_from_ = -1, force_nonfinite_to_ = -2;
};

int run_eval(const PipelineConfig &config, const PluginRegistry &registry, const std::string &checkpoint) {
  if (!fs::exists(fs::path(checkpoint) / "config.json") && !fs::exists(fs::path(checkpoint) / "adapter_config.json"))
    throw UserError(checkpoint + ": not a model folder (no config.json) nor a LoRA adapter folder (no adapter_config.json)");
  PipelineConfig cfg = config;
  cfg.doc["model"].as_table()->insert_or_assign("path", checkpoint);
  int64_t step = 0;
  if (std::ifstream st(fs::path(checkpoint) / "trainer_state.json"); st) step = json::parse(st).value("step", int64_t{0});
  Trainer t(cfg, registry, TrainOptions{false, false});
  std::cout << t.eval_only(step).dump() << "\n";
  return 0;
}

// Before anything loads: a run's checkpoints are never lost to a forgotten flag. Without --resume a
// run that has checkpoints (or a final export) is refused unless --overwrite, which moves it aside
// whole; --resume needs a checkpoint to continue from. A run folder with no checkpoint holds
// nothing to continue from: its old metrics, samples and event files are cleared, so the new run's
// rows are not appended to them.
void prepare_run_dir(const fs::path &dir, const TrainOptions &opt) {
  const auto ckpts = list_checkpoints(dir / "checkpoints");
  if (opt.resume) {
    if (ckpts.empty())
      throw UserError(fmt::format("--resume: {} has no checkpoint to continue from (looked in {}); run without --resume "
                                  "to start it",
                                  dir.string(), (dir / "checkpoints").string()));
    return;
  }
  const bool has_final = fs::exists(dir / "final" / "config.json");
  if (ckpts.empty() && !has_final) {
    for (const char *stale : {"metrics.jsonl", "tensorboard", "samples", "report.html"}) fs::remove_all(dir / stale);
    return;
  }
  const std::string what = ckpts.empty() ? "a finished model (final/)"
                                         : fmt::format("checkpoints up to step {}", ckpts.back().step);
  if (!opt.overwrite)
    throw UserError(fmt::format("{} has {}: --resume to continue, or --overwrite to start over (the old run is moved "
                                "aside, not deleted)",
                                dir.string(), what));
  const std::time_t now = std::time(nullptr);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", std::localtime(&now));
  fs::path aside = dir.string() + ".replaced-" + stamp;
  for (int k = 2; fs::exists(aside); ++k) aside = dir.string() + ".replaced-" + stamp + "-" + std::to_string(k);
  fs::rename(dir, aside);
  spdlog::warn("--overwrite: the old run ({}) is now {}", what, aside.string());
}

// Several processes (torchrun): join the group; rank 0 alone prepares the run folder and tells
// the others whether they may go on; then every rank trains its share.
int run_data_parallel(const PipelineConfig &config, const PluginRegistry &registry, TrainOptions opt,
                      const dist::Launch &launch) {
  if (launch.rank > 0) {
    spdlog::set_level(spdlog::level::warn);  // rank 0 speaks for the run
    opt.progress = false;
  }
  const auto &d = config.doc["dist"];
  const dist::Options o{*d["backend"].value<std::string>(), *d["timeout_s"].value<double>()};
  auto group = dist::Group::join(launch, o, parse_device(*config.doc["model"]["device"].value<std::string>()));
  // A collective that fails (a rank died: its sockets closed; or one hangs past timeout_s) ends
  // this rank too, saying so; the last checkpoint rank 0 completed stays usable.
  try {
    std::string refused;
    if (launch.rank == 0) {
      try {
        prepare_run_dir(config.run_dir(), opt);
      } catch (const UserError &e) {
        group->decide_on_root(e.what());
        throw;
      }
    }
    refused = group->decide_on_root("");
    if (!refused.empty()) throw UserError(fmt::format("rank {}: rank 0 refused the run: {}", launch.rank, refused));
    spdlog::info("data parallel: {} processes ({}), rank {}", launch.world, group->backend(), launch.rank);
    Trainer t(config, registry, opt, group.get());
    return t.run();
  } catch (const UserError &) {
    throw;
  } catch (const PluginError &) {
    throw;
  } catch (const std::exception &e) {
    // c10d and Gloo report a peer's death or silence as their own exceptions, from the collective
    // (or the backward pass that ran it).
    std::string what = e.what();
    if (auto *c = dynamic_cast<const c10::Error *>(&e)) what = c->what_without_backtrace();
    throw GroupError(fmt::format("rank {} of {}: the data-parallel group failed (another rank died, or did not answer "
                                 "within [dist] timeout_s = {:g} s): {}",
                                 launch.rank, launch.world, o.timeout_s, what.substr(0, 300)));
  }}

int run_training(const PipelineConfig &config, const PluginRegistry &registry, const TrainOptions &options) {
  if (const dist::Launch launch = dist::launch_from_environment(); launch.world > 1)
    return run_data_parallel(config, registry, options, launch);
  prepare_run_dir(config.run_dir(), options);
  Trainer t(config, registry, options);
  if (const char *f = std::getenv("KEEL_TEST_NONFINITE_STEPS")) {
    const char *dash = std::strchr(f, '-');
    t.force_nonfinite_from_ = std::atoll(f);
    t.force_nonfinite_to_ = dash ? std::atoll(dash + 1) : t.force_nonfinite_from_;
  }
  return t.run();
}

}  // namespace keel
