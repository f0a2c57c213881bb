/*
 * keel_plugin.h — the keel plugin ABI, version 1.0. The only thing that crosses the boundary
 * between the keel host and a technique plugin. Plain C99; include it from C or C++.
 *
 * ----------------------------------------------------------------------------------------------
 * Versioning rules (written once, here)
 * ----------------------------------------------------------------------------------------------
 *  1. A plugin library exports exactly one symbol, `keel_plugin_entry` (a keel_plugin_entry_t).
 *     Everything else is hidden (keel_add_plugin() in the SDK's CMake package does this).
 *  2. Every struct that crosses the boundary starts with `uint32_t struct_size`, set by the side
 *     that fills the struct to sizeof() of the struct *it* was compiled with. A reader never reads
 *     a field that lies past struct_size; use KEEL_HAS_FIELD() for fields added in a later minor.
 *  3. The root structs (the entry and the host table) also carry the ABI version {major, minor}.
 *     The host refuses a plugin of another major, and a plugin whose minor is newer than the
 *     host's, with a message naming both versions.
 *  4. Within a major version, structs and function tables are append-only: a new minor only adds
 *     fields at the end, never reorders, retypes or removes one. Enum values are never reused.
 *  5. Arrays of structs cross as arrays of *pointers*, so that each element's struct_size can
 *     grow independently of the array's stride.
 *  6. Ownership is symmetric: the side that allocates frees. Strings and tensors handed to a
 *     hook are borrowed for the duration of the call unless stated otherwise.
 *  7. Errors are status codes (keel_status_t); the human-readable reason goes through
 *     host->set_error(). No exception, C++ class, std:: object or libtorch type ever crosses.
 *  8. Tensors cross as DLPack DLTensor views (dlpack.h, shipped beside this header). A plugin
 *     that links libtorch itself names the torch version in its descriptor (requires_torch); the
 *     host refuses a mismatch.
 *  9. Libraries are never unloaded for the life of the process.
 */
#ifndef KEEL_PLUGIN_H
#define KEEL_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include "keel/dlpack.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Versions, visibility, helpers
 * ------------------------------------------------------------------------------------------- */

#define KEEL_ABI_MAJOR 1u
#define KEEL_ABI_MINOR 3u

/* The ABI version a struct or library was compiled against. */
typedef struct keel_abi_version {
  uint32_t major;
  uint32_t minor;
} keel_abi_version_t;

#if defined(_WIN32)
#define KEEL_EXPORT __declspec(dllexport)
#else
#define KEEL_EXPORT __attribute__((visibility("default")))
#endif

/* True when `ptr` (a pointer to a struct starting with struct_size) holds `field`. */
#define KEEL_HAS_FIELD(ptr, type, field) \
  ((ptr) != NULL && (ptr)->struct_size >= offsetof(type, field) + sizeof(((type *)0)->field))

/* ---------------------------------------------------------------------------------------------
 * Status codes: every hook and fallible host service returns one.
 * ------------------------------------------------------------------------------------------- */
typedef int32_t keel_status_t;
enum {
  KEEL_OK = 0,
  KEEL_ERROR = 1,           /* generic failure; the reason was given to host->set_error()      */
  KEEL_INVALID_ARGUMENT = 2, /* a parameter or input is out of its contract                     */
  KEEL_UNSUPPORTED = 3,     /* not available here (e.g. a service that needs a model, in `score`) */
  KEEL_NOT_FOUND = 4,       /* a named parameter, tensor, source or metric does not exist       */
  KEEL_OUT_OF_MEMORY = 5
};

/* Log levels for host->log(). */
enum { KEEL_LOG_DEBUG = 0, KEEL_LOG_INFO = 1, KEEL_LOG_WARN = 2, KEEL_LOG_ERROR = 3 };

/* ---------------------------------------------------------------------------------------------
 * Descriptor: what a plugin is, readable without creating it (`keel plugins`).
 * ------------------------------------------------------------------------------------------- */

/* The main role of a plugin. A plugin may implement hooks of other roles too. */
typedef int32_t keel_kind_t;
enum {
  KEEL_KIND_SCHEDULER = 1,  /* shapes the learning rate (lr hook)                  */
  KEEL_KIND_MODEL_HOOK = 2, /* acts on the model (on_model_ready / on_export)      */
  KEEL_KIND_LOSS = 3,       /* computes the training loss (loss hook); one at most */
  KEEL_KIND_DATA = 4,       /* composes batches from data sources                  */
  KEEL_KIND_METRIC = 5,     /* measures generations (on_eval), may raise an alarm  */
  KEEL_KIND_REMEDY = 6,     /* reacts to alarms (on_alarm)                         */
  KEEL_KIND_OTHER = 7
};

/* Bits of keel_plugin_descriptor_t.hooks: which hooks the plugin implements. */
#define KEEL_HOOK_ON_START (1ull << 0)
#define KEEL_HOOK_ON_END (1ull << 1)
#define KEEL_HOOK_LR (1ull << 2)
#define KEEL_HOOK_ON_MODEL_READY (1ull << 3)
#define KEEL_HOOK_ON_EXPORT (1ull << 4)
#define KEEL_HOOK_LOSS (1ull << 5)
#define KEEL_HOOK_COMPOSE_BATCH (1ull << 6)
#define KEEL_HOOK_ON_EVAL (1ull << 7)
#define KEEL_HOOK_ON_ALARM (1ull << 8)
#define KEEL_HOOK_STATE (1ull << 9) /* save_state and load_state, always as a pair */

/* Bits of keel_plugin_descriptor_t.flags. */
#define KEEL_FLAG_WANTS_EVAL_LOGITS (1ull << 0) /* on_eval may call host->eval_logits() */

/* The type of a parameter. The host checks TOML values against it before creating a plugin. */
typedef int32_t keel_param_type_t;
enum {
  KEEL_PARAM_BOOL = 1,
  KEEL_PARAM_INT = 2,         /* 64-bit integer; min/max apply                          */
  KEEL_PARAM_FLOAT = 3,       /* double; an integer literal is accepted; min/max apply  */
  KEEL_PARAM_STRING = 4,      /* choices, when set, lists the accepted values           */
  KEEL_PARAM_STRING_LIST = 5, /* array of strings; choices applies to each element      */
  KEEL_PARAM_ARRAY = 6,       /* any array (e.g. an array of tables); the plugin checks the inside */
  KEEL_PARAM_TABLE = 7        /* any table; the plugin checks the inside                */
};

/* One parameter a plugin accepts. */
typedef struct keel_param_spec {
  uint32_t struct_size;
  const char *name;          /* the TOML key                                                  */
  keel_param_type_t type;
  const char *default_value; /* the default as a TOML value literal ("0.1", "\"uniform\"",
                                "[1, 2]"); NULL means the parameter is required               */
  double min;                /* inclusive bounds for INT and FLOAT; both 0 = unbounded          */
  double max;
  const char *choices;       /* "a|b|c" for STRING / STRING_LIST, or NULL                      */
  const char *description;   /* one line, shown by `keel plugins`                             */
} keel_param_spec_t;

typedef struct keel_plugin_descriptor {
  uint32_t struct_size;
  const char *id;          /* reverse-DNS, unique: "org.keel.label_smoothing"                */
  const char *name;        /* what TOML and the CLI use: "label_smoothing"                   */
  keel_kind_t kind;
  const char *version;     /* the plugin's own semver: "1.2.0"                               */
  const char *description; /* one line                                                       */
  const char *license;     /* SPDX identifier                                                */
  const char *vendor;
  uint64_t hooks;          /* KEEL_HOOK_* bits                                               */
  uint64_t flags;          /* KEEL_FLAG_* bits                                               */
  const keel_param_spec_t *const *params; /* n_params pointers                              */
  uint32_t n_params;
  const char *requires_torch; /* "2.14.1" when the library links libtorch, else NULL          */
} keel_plugin_descriptor_t;

/* ---------------------------------------------------------------------------------------------
 * Plain data handed to hooks and services
 * ------------------------------------------------------------------------------------------- */

/* Where the run stands. */
typedef struct keel_run_info {
  uint32_t struct_size;
  int64_t step;        /* the optimizer step about to run (0-based)                  */
  int64_t total_steps; /* run.steps                                                  */
  int64_t epoch;       /* epochs completed by the first data source                  */
  uint64_t seed;       /* run.seed                                                   */
  const char *run_dir; /* runs/<name>/ ; borrowed, valid for the life of the plugin  */
  /* ---- appended in ABI 1.3 (KEEL_HAS_FIELD(&info, keel_run_info_t, world_size)) ---- */
  int32_t rank;        /* this process in a data-parallel run (0 in a single process) */
  int32_t world_size;  /* processes in the run; each trains on 1/world_size of a batch */
} keel_run_info_t;

/* One data source ([data.<name>] in the pipeline). */
typedef struct keel_source_info {
  uint32_t struct_size;
  const char *name;  /* borrowed                                  */
  uint64_t size;     /* examples                                  */
  uint64_t epoch;    /* epochs this source has completed          */
  uint64_t cursor;   /* position in the current epoch's order     */
} keel_source_info_t;

/* Sampling settings used by evaluation generations. */
typedef struct keel_generation_settings {
  uint32_t struct_size;
  double temperature; /* 0 = greedy */
  double top_p;
  int32_t top_k;      /* 0 = off    */
  double repetition_penalty;
  int32_t max_new_tokens;
} keel_generation_settings_t;

/* One probe generation handed to on_eval. */
typedef struct keel_eval_sample {
  uint32_t struct_size;
  const char *prompt;      /* UTF-8                               */
  const char *text;        /* the generated text, UTF-8           */
  const int64_t *tokens;   /* the generated token ids             */
  uint64_t n_tokens;
} keel_eval_sample_t;

typedef struct keel_eval_batch {
  uint32_t struct_size;
  int64_t step;
  double temperature;                       /* the temperature these samples were drawn at */
  const keel_eval_sample_t *const *samples; /* n_samples pointers                          */
  uint32_t n_samples;
} keel_eval_batch_t;

/* An alarm that started, handed to on_alarm. */
typedef struct keel_alarm {
  uint32_t struct_size;
  const char *metric; /* the metric that raised it ("distinct_ngrams", or "nonfinite") */
  double value;       /* the metric's value at that evaluation                         */
  int64_t step;
  const char *reason; /* human text: "0.21 < alarm_below 0.3"                          */
} keel_alarm_t;

/* Checkpoint of this run, as listed by host->checkpoint_info(). */
typedef struct keel_checkpoint_info {
  uint32_t struct_size;
  int64_t step;
  int32_t healthy;  /* 1 when no alarm was active at its evaluation */
  const char *path; /* borrowed until the next host call            */
  int32_t best;     /* ABI 1.2: 1 for the one [run] keep_best keeps   */
} keel_checkpoint_info_t;

/* Sink for save_state; the host owns it and copies what it is given. */
typedef struct keel_state_writer {
  uint32_t struct_size;
  void *ctx;
  keel_status_t (*write)(struct keel_state_writer *self, const void *data, uint64_t size);
} keel_state_writer_t;

/* LoRA adapters asked for through host->attach_lora (ABI 1.2): on every decoder projection whose
   module name ("model.layers.3.self_attn.q_proj") matches `targets` (an ECMAScript regular
   expression, searched), y = x W^T + (alpha / rank) * dropout(x) A^T B^T, A [rank, in] initialised
   as PEFT does (uniform +-1/sqrt(in)), B [out, rank] zero. */
typedef struct keel_lora_spec {
  uint32_t struct_size;
  int64_t rank;
  double alpha;
  double dropout;      /* on the adapter's input, training only */
  const char *targets; /* borrowed for the call */
} keel_lora_spec_t;

/* Dropout sites of the model. */
typedef int32_t keel_dropout_site_t;
enum { KEEL_DROPOUT_EMBEDDING = 0, KEEL_DROPOUT_ATTENTION = 1, KEEL_DROPOUT_FFN = 2 };

/* ---------------------------------------------------------------------------------------------
 * Parameters: the resolved values of a plugin's [[pipeline]] entry, defaults filled in.
 * Keys are paths: "epsilon", "stages.0.until", "sources.target". Strings returned are borrowed
 * for the life of the plugin instance.
 * ------------------------------------------------------------------------------------------- */
typedef struct keel_params {
  uint32_t struct_size;
  void *ctx;
  /* 1 when the path exists */
  int32_t (*has)(const struct keel_params *self, const char *path);
  keel_status_t (*get_bool)(const struct keel_params *self, const char *path, int32_t *out);
  keel_status_t (*get_int)(const struct keel_params *self, const char *path, int64_t *out);
  keel_status_t (*get_double)(const struct keel_params *self, const char *path, double *out);
  keel_status_t (*get_string)(const struct keel_params *self, const char *path, const char **out);
  /* number of elements of an array, or of keys of a table */
  keel_status_t (*size)(const struct keel_params *self, const char *path, uint64_t *out);
  /* the i-th key of a table, keys in sorted order */
  keel_status_t (*key_at)(const struct keel_params *self, const char *path, uint64_t i,
                          const char **out);
  /* the value at path (or all, for "") as JSON text */
  keel_status_t (*get_json)(const struct keel_params *self, const char *path, const char **out);
} keel_params_t;

/* ---------------------------------------------------------------------------------------------
 * Host services: a table the host hands to each plugin instance at creation. Valid for the
 * life of the instance. Each function takes the table itself as its first argument, which is
 * how the host knows which plugin is calling. Append-only (rule 4).
 * ------------------------------------------------------------------------------------------- */
typedef struct keel_host {
  uint32_t struct_size;
  keel_abi_version_t abi;
  void *host_data; /* the host's; plugins leave it alone */

  /* Errors and logging */
  void (*set_error)(const struct keel_host *self, const char *message); /* copies message */
  void (*log)(const struct keel_host *self, int32_t level, const char *message);

  /* Run information */
  keel_status_t (*run_info)(const struct keel_host *self, keel_run_info_t *out);

  /* Learning rate: the rate the optimizer uses this step (after the lr chain), and the base
     rate the chain starts from. set_base_lr takes effect from the next step. */
  double (*get_lr)(const struct keel_host *self);
  keel_status_t (*set_base_lr)(const struct keel_host *self, double lr);

  /* Model parameters, by Hugging Face name. get_parameter gives a borrowed view (any device,
     any dtype) valid until the hook returns. copy_parameter_to / _from copy into or out of a
     plugin-owned CPU tensor, converting dtype and device: the portable way to read or write. */
  uint64_t (*parameter_count)(const struct keel_host *self);
  keel_status_t (*parameter_name)(const struct keel_host *self, uint64_t i, const char **out);
  keel_status_t (*get_parameter)(const struct keel_host *self, const char *name, DLTensor *out);
  keel_status_t (*copy_parameter_to)(const struct keel_host *self, const char *name,
                                     DLTensor *dst);
  keel_status_t (*copy_parameter_from)(const struct keel_host *self, const char *name,
                                       const DLTensor *src);
  /* 1 when the input embedding and the LM head share storage */
  int32_t (*embeddings_tied)(const struct keel_host *self);

  /* Dropout sites */
  keel_status_t (*set_dropout)(const struct keel_host *self, keel_dropout_site_t site, double p);
  keel_status_t (*get_dropout)(const struct keel_host *self, keel_dropout_site_t site, double *p);

  /* Data sources */
  uint32_t (*source_count)(const struct keel_host *self);
  keel_status_t (*source_info)(const struct keel_host *self, uint32_t i, keel_source_info_t *out);
  /* give a source a new order from `seed`, restarting its epoch */
  keel_status_t (*reshuffle_source)(const struct keel_host *self, const char *name, uint64_t seed);

  /* Evaluation generation settings */
  keel_status_t (*get_generation)(const struct keel_host *self, keel_generation_settings_t *out);
  keel_status_t (*set_generation)(const struct keel_host *self,
                                  const keel_generation_settings_t *in);
  /* Inside on_eval, for plugins flagged KEEL_FLAG_WANTS_EVAL_LOGITS: the logits [n_tokens, V]
     (fp32, CPU) that produced sample i, valid until the next call or the end of the hook. */
  keel_status_t (*eval_logits)(const struct keel_host *self, uint32_t i, DLTensor *out);

  /* Metrics: publish a value by name with its alarm state (1 = alarm); read the latest value
     of any metric. A metric plugin publishes its main value under its own name and side values
     as "<name>.<side>". */
  keel_status_t (*publish_metric)(const struct keel_host *self, const char *name, double value,
                                  int32_t alarm, const char *reason);
  keel_status_t (*read_metric)(const struct keel_host *self, const char *name, double *value,
                               int32_t *alarm);

  /* Checkpoints of this run, oldest first */
  uint32_t (*checkpoint_count)(const struct keel_host *self);
  keel_status_t (*checkpoint_info)(const struct keel_host *self, uint32_t i,
                                   keel_checkpoint_info_t *out);
  /* Restore the last healthy checkpoint once the current hook returns; the step counter keeps
     going forward. */
  keel_status_t (*request_rollback)(const struct keel_host *self, const char *reason);
  /* Stop the run after the current step, saving a checkpoint; `reason` is shown to the user. */
  keel_status_t (*request_stop)(const struct keel_host *self, const char *reason);

  /* Keep a parameter out of optimizer updates until step `until_step` (exclusive); 0 unfreezes. */
  keel_status_t (*freeze_parameter)(const struct keel_host *self, const char *name, int64_t until_step);
  /* NEFTune noise on the embedding output, in training only: uniform(-1, 1) scaled by
     alpha / sqrt(L * d), with L the real (unpadded) tokens of each sequence, d the hidden size.
     0 turns it off. */
  keel_status_t (*set_embedding_noise)(const struct keel_host *self, double alpha);

  /* ---- appended in ABI 1.1: check with KEEL_HAS_FIELD(host, keel_host_t, ...) first ---- */
  /* Inside on_eval: the entropy (nats) of the next-token distribution at each label position of
     the last training micro-batch, teacher-forced with the current weights in evaluation mode
     (no dropout): fp32 [n] on the CPU, valid until the end of the hook. KEEL_UNSUPPORTED where
     no training batch exists (keel eval, or before the first step). */
  keel_status_t (*train_entropy)(const struct keel_host *self, DLTensor *out);

  /* ---- appended in ABI 1.2 ---- */
  /* In on_model_ready: attach LoRA adapters and freeze every base parameter for the whole run;
     the adapters are the trained parameters (named "<module>.lora_A.weight", "<module>.lora_B.weight"
     in parameter_name), and freeze_parameter(name, 0) trains a base parameter beside them.
     Checkpoints then hold the adapters, the base parameters that train, and their optimizer state.
     At the end of the run the host writes final/ as a PEFT adapter folder, unless merge_lora ran. */
  keel_status_t (*attach_lora)(const struct keel_host *self, const keel_lora_spec_t *spec);
  /* In on_export: fold the adapters into the weights (W += alpha / rank * B A) and drop them, so
     final/ is an ordinary model folder. */
  keel_status_t (*merge_lora)(const struct keel_host *self);
  /* As request_rollback, to the checkpoint of `step` (one that checkpoint_info lists). */
  keel_status_t (*request_rollback_to)(const struct keel_host *self, int64_t step, const char *reason);

  /* ---- appended in ABI 1.3 ---- */
  /* Sums `values[0..n)` over the processes of a data-parallel run, in place, so a statistic of the
     training batch (each process holds its share) is the same on every process. Every process must
     call it at the same point with the same n; in a single process it does nothing. n <= 65536. */
  keel_status_t (*all_reduce_sum)(const struct keel_host *self, double *values, uint32_t n);
} keel_host_t;

/* ---------------------------------------------------------------------------------------------
 * A plugin instance: created by the entry's create(), destroyed by its own destroy().
 * A hook pointer is NULL when not implemented; it must then be absent from descriptor->hooks.
 * Every hook returns KEEL_OK or a status with the reason given to host->set_error().
 * ------------------------------------------------------------------------------------------- */
typedef struct keel_plugin {
  uint32_t struct_size;
  void *plugin_data; /* the plugin's; the host leaves it alone */

  void (*destroy)(struct keel_plugin *self);

  /* The run begins / ends. on_end runs in reverse pipeline order. */
  keel_status_t (*on_start)(struct keel_plugin *self);
  keel_status_t (*on_end)(struct keel_plugin *self);

  /* Learning-rate chain, every step, in pipeline order; the first sees the base LR. */
  keel_status_t (*lr)(struct keel_plugin *self, int64_t step, double lr_in, double *lr_out);

  /* The model is built and about to train / about to be saved (reverse order). */
  keel_status_t (*on_model_ready)(struct keel_plugin *self);
  keel_status_t (*on_export)(struct keel_plugin *self);

  /* Loss over a chunk of tokens. logits [n, V] (fp32 or bf16), labels [n] int64 with -100 =
     ignore, grad_out [n, V] of logits' dtype and device. Writes d(loss_sum)/d(logits) into
     grad_out (rows of ignored labels: zero), *loss_sum and *count (tokens counted). The host owns
     chunking and divides by the global batch's count. */
  keel_status_t (*loss)(struct keel_plugin *self, const DLTensor *logits, const DLTensor *labels,
                        DLTensor *grad_out, double *loss_sum, int64_t *count);

  /* Which source fills each of the n_slots sequences of global batch `batch_no`: writes an
     index into `sources` for every slot. */
  keel_status_t (*compose_batch)(struct keel_plugin *self, int64_t batch_no, uint32_t n_slots,
                                 const keel_source_info_t *const *sources, uint32_t n_sources,
                                 uint32_t *source_of_slot);

  /* Probe generations of an evaluation; publish values through host->publish_metric. */
  keel_status_t (*on_eval)(struct keel_plugin *self, const keel_eval_batch_t *batch);

  /* An alarm this remedy listens to has started (the host applies `on`, cooldown, max_fires). */
  keel_status_t (*on_alarm)(struct keel_plugin *self, const keel_alarm_t *alarm);

  /* Plugin state, stored in checkpoints so a resumed run continues exactly. */
  keel_status_t (*save_state)(struct keel_plugin *self, keel_state_writer_t *out);
  keel_status_t (*load_state)(struct keel_plugin *self, const void *data, uint64_t size);
} keel_plugin_t;

/* ---------------------------------------------------------------------------------------------
 * Entry: the one exported symbol.
 * ------------------------------------------------------------------------------------------- */
typedef struct keel_plugin_entry {
  uint32_t struct_size;
  keel_abi_version_t abi; /* KEEL_ABI_MAJOR / KEEL_ABI_MINOR the plugin was built with */
  const keel_plugin_descriptor_t *descriptor;
  /* Create an instance. `host` and `params` outlive it. On failure returns a status (reason
     through host->set_error) and leaves *out NULL. */
  keel_status_t (*create)(const keel_host_t *host, const keel_params_t *params,
                          keel_plugin_t **out);
} keel_plugin_entry_t;

#define KEEL_PLUGIN_ENTRY_SYMBOL "keel_plugin_entry"

#ifdef __cplusplus
}
#endif

#endif /* KEEL_PLUGIN_H */
