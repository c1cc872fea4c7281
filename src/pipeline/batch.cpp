// The predict batch: a folder of studies -> Kaggle submission (+ wide CSV, JSON report, label maps). This file
// composes the batch's units: the plan (which studies, in which order), the journal (progress on disk, --resume),
// the prefetcher (loading ahead), the progress display, the Predictor (the models) and the writers (outputs).
//
// Batch safety: every study runs on its own; a failure is logged with the study's UID, kept in the report and
// the batch goes on. Each finished study is appended (and flushed to disk) to the progress journal beside the
// output, `<output>.progress.jsonl`; the outputs are rewritten from the entries atomically every few seconds, at
// the end and on an interrupt.
#include "pipeline/batch.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "cspine/backend.h"
#include "cspine/dicom.h"
#include "cspine/error.h"
#include "cspine/exit_codes.h"
#include "cspine/predict.h"
#include "cspine/runtime.h"
#include "output/dicom_results.h"
#include "output/predict_outputs.h"
#include "output/writers.h"
#include "pipeline/input_plan.h"
#include "pipeline/journal.h"
#include "pipeline/plan.h"
#include "pipeline/prefetcher.h"
#include "pipeline/progress.h"
#include "util/atomic_file.h"
#include "util/file_lock.h"
#include "util/interrupt.h"
#include "util/log.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace cspine {

namespace {

using Clock = std::chrono::steady_clock;

// models/<name> of this checkout or installation: $CSPINE_MODELS_DIR, <exe>/../models (the build tree),
// <exe>/../share/cspine/models (installed), then the source tree cspine was built from.
std::string default_model(const std::string& name) {
  std::vector<fs::path> dirs;
  if (const char* env = std::getenv("CSPINE_MODELS_DIR"); env && *env) dirs.emplace_back(env);
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    dirs.push_back(exe.parent_path().parent_path() / "models");
    dirs.push_back(exe.parent_path().parent_path() / "share" / "cspine" / "models");
  }
  dirs.emplace_back(fs::path(CSPINE_SOURCE_DIR) / "models");
  std::string tried;
  for (const auto& d : dirs) {
    const fs::path p = d / name;
    if (fs::is_regular_file(p, ec)) return fs::weakly_canonical(p, ec).string();
    tried += " " + p.string();
  }
  throw ModelError("default model " + name + " not found (looked at:" + tried +
                   "); pass --seg-model/--cls-model or set CSPINE_MODELS_DIR");
}

// FNV-1a over the file's bytes: enough to tell whether --resume would mix results of different models.
std::string file_fingerprint(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  uint64_t h = 1469598103934665603ull;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    for (std::streamsize i = 0; i < in.gcount(); ++i) {
      h ^= static_cast<unsigned char>(buf[static_cast<std::size_t>(i)]);
      h *= 1099511628211ull;
    }
  }
  char s[17];
  std::snprintf(s, sizeof s, "%016llx", static_cast<unsigned long long>(h));
  return s;
}

json model_json(const std::string& path, const ModelContract& c) {
  json contract = json::parse(c.json, nullptr, false);
  return {{"path", path}, {"fnv1a64", file_fingerprint(path)}, {"contract", contract}};
}

}  // namespace

int predict_batch(const BatchOptions& options) {
  BatchOptions o = options;
  install_interrupt_handlers();
  const auto t_start = Clock::now();
  // Outputs first: a typo in a path should not cost a model load and a scan.
  check_output_path(o.output);
  // One run per output: two runs on the same -o would interleave their journal and outputs.
  const FileLock lock(o.output + ".lock", "the output '" + o.output + "'");
  if (!o.wide_csv.empty()) check_output_path(o.wide_csv);
  if (!o.report.empty()) check_output_path(o.report);
  if (!o.masks.empty()) {
    std::error_code ec;
    fs::create_directories(o.masks, ec);
    if (ec || !fs::is_directory(o.masks)) throw OutputError("cannot create the masks folder '" + o.masks + "'");
  }
  if (!o.dump_stages.empty()) {
    std::error_code ec;
    fs::create_directories(o.dump_stages, ec);
    if (ec || !fs::is_directory(o.dump_stages))
      throw OutputError("cannot create the --dump-stages folder '" + o.dump_stages + "'");
    o.p.keep_intermediates = true;
  }
  o.p.seg_model = o.seg_model.empty() ? default_model("seg.pt") : o.seg_model;
  o.p.cls_model = o.cls_model.empty() ? default_model("cls.pt") : o.cls_model;
  std::optional<TestRows> test;
  if (!o.test_csv.empty()) test = read_test_rows(o.test_csv);

  const Predictor predictor(o.p);
  const std::string device = predictor.device();
  log_info("models: " + o.p.seg_model + ", " + o.p.cls_model + " on " + device + (o.p.fp16 ? " (fp16)" : ""));
  const auto& prior = predictor.cls_contract().prior;

  // The input's studies: a walk of the input, or (a shard) the plan's list, then only this run's studies indexed.
  StudyIndex index;
  std::vector<std::string> found;
  if (o.input_plan) {
    for (const auto& s : o.input_plan->studies) found.push_back(s.uid);
  } else {
    index = scan_studies(o.input, ScanOptions{o.p.threads});
    for (const auto& s : index.studies) found.push_back(s.study_uid);
  }
  std::sort(found.begin(), found.end());
  Plan plan = make_plan(found, test);
  if (o.filter) plan = filter_plan(plan, o.filter);
  if (o.input_plan) index = scan_planned(*o.input_plan, plan.score, ScanOptions{o.p.threads});

  const json models = {{"segmentation", model_json(o.p.seg_model, predictor.seg_contract())},
                       {"classifier", model_json(o.p.cls_model, predictor.cls_contract())}};
  json header = {{"cspine_progress", 1}, {"models", {{"segmentation", models["segmentation"]["fnv1a64"]},
                                                     {"classifier", models["classifier"]["fnv1a64"]}}}};
  auto is_synthetic = [&](const char* kind) {
    const json& c = models[kind]["contract"];
    return c.is_object() && c.contains("provenance") && c["provenance"].value("synthetic", false);
  };
  // Loading ahead: on CUDA the models leave the CPU to the loader, so 2 studies ahead at normal priority; on the
  // CPU the models keep every core busy, so 1 study ahead at the lowest priority, which takes their idle time
  // and the time they wait for it without slowing them down (a normal-priority loader gained less and once lost:
  // the LibTorch threads wait for each other whenever one of them is descheduled). docs/performance.md.
  const bool cuda = device.rfind("cuda", 0) == 0;
  const std::size_t depth = o.prefetch ? *o.prefetch : cuda ? 2 : 1;
  // The report's run fields.
  json fixed = {{"input", o.input},
                {"device", device},
                {"fp16", o.p.fp16},
                {"batch_size", predictor.batch_size()},
                {"preprocess", predictor.preprocesses_on_device() ? "device" : "host"},
                {"prefetch", depth},
                {"models", models}};
  if (is_synthetic("segmentation") || is_synthetic("classifier"))
    fixed["note"] = "these models were trained on synthetic phantoms only: not validated on real CT, not for clinical use";
  // A shard's journal also says what `cspine merge` needs to write the outputs as this run would.
  if (o.journal_extra.is_object() && !o.journal_extra.empty()) {
    header.update(o.journal_extra);
    header["prior"] = prior;
    header["report"] = fixed;
  }
  Journal journal(o.output + ".progress.jsonl", header, o.resume);
  std::map<std::string, json> done;
  for (const auto& e : journal.previous()) {
    if (e.value("status", "") != "ok") continue;  // failed ones are tried again
    done[e["study_uid"].get<std::string>()] = e;
  }
  std::size_t resumed = 0;
  for (const auto& uid : plan.score) resumed += done.count(uid);
  if (o.resume)
    log_info("--resume: " + std::to_string(resumed) + " of " + std::to_string(plan.score.size()) +
             " studies already scored");
  for (const auto& uid : plan.missing) {
    log_warn("study " + uid + " is named in " + o.test_csv + " but not found in " + o.input + ": its rows get the prior");
    done[uid] = missing_entry(uid);
  }

  // The outputs, each a Writer: the journal line, masks per study, the CSVs and the report from all entries.
  std::vector<std::unique_ptr<Writer>> writers;
  writers.push_back(std::make_unique<KaggleCsvWriter>(o.output, test, prior));
  if (!o.wide_csv.empty()) writers.push_back(std::make_unique<WideCsvWriter>(o.wide_csv));
  if (!o.report.empty()) writers.push_back(std::make_unique<ReportWriter>(o.report, fixed));
  if (!o.masks.empty()) writers.push_back(std::make_unique<NiftiMaskWriter>(o.masks));
  if (!o.dump_stages.empty()) writers.push_back(std::make_unique<StageDumpWriter>(o.dump_stages));
  if (!o.dicom_out.empty()) {
    std::error_code ec;
    fs::create_directories(o.dicom_out, ec);
    if (ec || !fs::is_directory(o.dicom_out)) throw OutputError("cannot create the --dicom-out folder '" + o.dicom_out + "'");
    writers.push_back(std::make_unique<DicomResultsWriter>(
        o.dicom_out, DicomModels{models["segmentation"]["fnv1a64"], models["classifier"]["fnv1a64"]}));
  }
  auto write_outputs = [&](bool complete) {
    std::vector<json> entries;
    for (const auto& uid : plan.order)
      if (auto it = done.find(uid); it != done.end()) entries.push_back(it->second);
    const BatchSnapshot snapshot{entries, complete};
    for (auto& w : writers) w->snapshot(snapshot);
  };

  Progress progress(plan.score.size() - resumed, log_level() <= LogLevel::info);
  std::size_t n_done = resumed, n_failed = 0, n_ok_here = 0;
  int first_failure = 0;
  StageSeconds sum;
  auto last_flush = Clock::now();
  bool stopped = false;
  std::vector<std::string> todo;
  for (const auto& uid : plan.score)
    if (!done.count(uid)) todo.push_back(uid);
  const int threads = o.p.threads;
  Prefetcher prefetcher([&](const std::string& uid) { return predictor.prepare(index, uid, threads); }, todo, depth,
                        /*background=*/!cuda);
  for (const auto& uid : todo) {
    if (interrupted()) {
      stopped = true;
      break;
    }
    const auto t0 = Clock::now();
    json entry;
    std::string what;
    try {
      std::optional<PreparedStudy> prepared = prefetcher.next();
      const double waited = std::chrono::duration<double>(Clock::now() - t0).count();
      if (!prepared) {  // the loading stopped on an interrupt
        stopped = true;
        break;
      }
      StudyResult r = predictor.run(std::move(*prepared));
      r.seconds.wait = waited;
      const auto tw = Clock::now();
      for (auto& w : writers) {
        w->study(r);
        for (auto& warning : w->take_warnings()) r.warnings.push_back(std::move(warning));
      }
      r.seconds.masks = std::chrono::duration<double>(Clock::now() - tw).count();
      entry = study_entry(r);
      sum.load += r.seconds.load;
      sum.wait += r.seconds.wait;
      sum.segment += r.seconds.segment;
      sum.cleanup += r.seconds.cleanup;
      sum.classify += r.seconds.classify;
      sum.masks += r.seconds.masks;
      sum.segment_model += r.seconds.segment_model;
      sum.classify_model += r.seconds.classify_model;
      ++n_ok_here;
      char b[200];
      std::snprintf(b, sizeof b,
                    "patient %.3f, %.1f s (load %.1f, waited %.1f, segment %.1f, cleanup %.2f, classify %.1f, masks %.1f)",
                    r.patient_overall, r.seconds.total(), r.seconds.load, r.seconds.wait, r.seconds.segment,
                    r.seconds.cleanup, r.seconds.classify, r.seconds.masks);
      what = b;
      if (!entry["fallbacks"].empty()) {
        std::string list;
        for (const auto& f : entry["fallbacks"]) {
          list += (list.empty() ? "" : ", ") + f["vertebra"].get<std::string>() + " ";
          const int n = f["slices_found"].get<int>();
          list += n == 0 ? std::string("not found") : "on " + std::to_string(n) + " slice(s) only";
        }
        log_warn("study " + uid + ": " + list + ": the prior is reported for " +
                 (entry["fallbacks"].size() == 1 ? "it" : "them"));
      }
    } catch (const InterruptedError&) {
      stopped = true;
      break;
    } catch (const Error& e) {
      const double s = std::chrono::duration<double>(Clock::now() - t0).count();
      entry = failed_entry(uid, e.code(), e.what(), s);
      if (!first_failure) first_failure = to_int(e.code());
      log_error("study " + uid + " failed: " + e.what());
      what = "FAILED";
    } catch (const std::exception& e) {
      const double s = std::chrono::duration<double>(Clock::now() - t0).count();
      entry = failed_entry(uid, ExitCode::internal, std::string("internal error: ") + e.what(), s);
      if (!first_failure) first_failure = to_int(ExitCode::internal);
      log_error("study " + uid + " failed: internal error: " + e.what());
      what = "FAILED";
    }
    if (entry.value("status", "") == "failed") ++n_failed;
    journal.entry(entry);
    done[uid] = entry;
    ++n_done;
    progress.study_done(n_done - resumed, uid, what);
    if (std::chrono::duration<double>(Clock::now() - last_flush).count() >= 5.0) {
      write_outputs(false);
      last_flush = Clock::now();
    }
  }
  progress.finish();
  write_outputs(!stopped);

  const double wall = std::chrono::duration<double>(Clock::now() - t_start).count();
  std::size_t n_ok = 0;
  for (const auto& uid : plan.score)
    if (auto it = done.find(uid); it != done.end() && it->second.value("status", "") == "ok") ++n_ok;
  char line[320];
  std::snprintf(line, sizeof line,
                "%zu studies scored, %zu failed, %zu missing from the input%s; %.1f s in all, peak memory %.0f MB", n_ok,
                n_failed, plan.missing.size(), resumed ? (" (" + std::to_string(resumed) + " from the journal)").c_str() : "",
                wall, peak_rss_mb());
  log_info(line);
  if (n_ok_here > 0) {
    const double k = static_cast<double>(n_ok_here);
    std::snprintf(line, sizeof line,
                  "seconds per study: %.2f (waiting for loading %.2f, segment %.2f, cleanup %.2f, classify %.2f, "
                  "masks %.2f; of which in the models %.2f); loading took %.2f",
                  sum.total() / k, sum.wait / k, sum.segment / k, sum.cleanup / k, sum.classify / k, sum.masks / k,
                  (sum.segment_model + sum.classify_model) / k, sum.load / k);
    log_info(line);
  }
  log_info("wrote " + o.output + (o.wide_csv.empty() ? "" : ", " + o.wide_csv) +
           (o.report.empty() ? "" : ", " + o.report));
  if (stopped) throw InterruptedError("interrupted: " + std::to_string(n_done) + " of " + std::to_string(plan.score.size()) +
                                      " studies are saved; run again with --resume to finish");
  if (n_failed == 0) return 0;
  if (n_ok > 0) return to_int(ExitCode::partial);
  return first_failure;  // every study failed: the first failure's own code
}

}  // namespace cspine
