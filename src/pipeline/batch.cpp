// The predict batch: a folder of studies -> Kaggle submission (+ wide CSV, JSON report, label maps).
//
// Batch safety: every study runs on its own; a failure is logged with the study's UID, kept in the report and
// the batch goes on. Each finished study is appended (and flushed to disk) to a progress journal beside the
// output, `<output>.progress.jsonl`; the outputs are rewritten from the journal's entries atomically every few
// seconds, at the end and on an interrupt. `--resume` reads the journal back and skips the studies it holds.
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "pipeline/batch.h"

#include "cspine/backend.h"
#include "cspine/dicom.h"
#include "cspine/error.h"
#include "cspine/exit_codes.h"
#include "cspine/predict.h"
#include "cspine/runtime.h"
#include "output/predict_outputs.h"
#include "util/atomic_file.h"
#include "util/file_lock.h"
#include "util/text.h"
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

// The journal: a header line, then one report entry per finished study, each flushed and fsync'ed.
class Journal {
public:
  Journal(const std::string& path, const json& header, bool resume, std::vector<json>& previous) : path_(path) {
    if (resume) {
      std::ifstream in(path);
      if (!in) {
        log_warn("--resume: no progress journal at '" + path + "', starting from the first study");
      } else {
        std::string line;
        int number = 0;
        while (std::getline(in, line)) {
          ++number;
          json j;
          try {
            j = json::parse(line);
          } catch (const json::exception&) {
            // Only a last line can be half-written by a run that stopped; an unreadable header means the file
            // is not (or no longer) a journal, and its entries cannot be matched to the models.
            if (number == 1)
              throw UsageError("--resume: '" + path + "' does not start with a cspine progress header (line 1 is "
                               "unreadable); run without --resume to start over");
            log_warn(path + ":" + std::to_string(number) + ": unreadable line ignored (a run stopped while writing it)");
            continue;
          }
          if (number == 1) {
            if (!j.is_object() || !j.contains("cspine_progress"))
              throw InvalidInputError(path + ": not a cspine progress journal");
            if (j.value("models", json()) != header.at("models"))
              throw UsageError("--resume: '" + path +
                               "' was written with other models (or other model files); run without --resume to start over");
            continue;
          }
          if (!j.is_object() || !j.contains("study_uid") || !j["study_uid"].is_string()) {
            log_warn(path + ":" + std::to_string(number) + ": line without a study ignored");
            continue;
          }
          previous.push_back(std::move(j));
        }
      }
    }
    // Rewrite the journal with what is kept, so a half-written last line never stays in the middle.
    std::string text = dump_json(header) + "\n";
    for (const auto& e : previous) text += dump_json(e) + "\n";
    write_text_atomically(path, text);
    file_ = std::fopen(path.c_str(), "a");
    if (!file_) throw OutputError("cannot append to the progress journal '" + path + "'");
  }
  ~Journal() {
    if (file_) std::fclose(file_);
  }
  void append(const json& entry) {
    const std::string line = dump_json(entry) + "\n";
    if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0)
      throw OutputError("cannot append to the progress journal '" + path_ + "'");
    ::fsync(::fileno(file_));
  }

private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

// Studies done, rate and ETA: a redrawn bar on a terminal, one log line per study otherwise.
class Progress {
public:
  Progress(std::size_t total, bool enabled) : total_(total), tty_(enabled && ::isatty(2)), t0_(Clock::now()) {}
  void study_done(std::size_t done, const std::string& uid, const std::string& what) {
    const double elapsed = std::chrono::duration<double>(Clock::now() - t0_).count();
    ++scored_here_;
    const double rate = elapsed > 0 ? static_cast<double>(scored_here_) / elapsed : 0.0;
    const double eta = rate > 0 ? static_cast<double>(total_ - done) / rate : 0.0;
    char tail[96];
    std::snprintf(tail, sizeof tail, "%.2f studies/s, ETA %s", rate, clock_text(eta).c_str());
    if (!tty_) {
      log_info("[" + std::to_string(done) + "/" + std::to_string(total_) + "] " + uid + ": " + what + " (" + tail + ")");
      return;
    }
    const int width = 30;
    const int filled = total_ ? static_cast<int>(width * done / total_) : width;
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.resize(static_cast<std::size_t>(width), '.');
    std::fprintf(stderr, "\r\033[K[%s] %zu/%zu studies, %s", bar.c_str(), done, total_, tail);
    if (done == total_) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  }
  void finish() {
    if (tty_) std::fprintf(stderr, "\n");
  }

private:
  static std::string clock_text(double s) {
    const long t = std::lround(s);
    char b[32];
    std::snprintf(b, sizeof b, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    return b;
  }
  std::size_t total_, scored_here_ = 0;
  bool tty_;
  Clock::time_point t0_;
};

// Loads the studies ahead of the models in a thread of its own: up to `depth` prepared studies wait in a
// queue, so decoding and preprocessing the next study overlap inference on this one while memory stays bounded
// (depth + 1 volumes). With depth 0 everything runs in the caller's thread. Studies come out in plan order.
// `background`: the loading thread (and the decoding threads it starts, which inherit it) runs at the lowest
// priority (nice 19), so on a CPU whose cores the models keep busy it takes only what they leave idle instead
// of competing with them; the first study, which nothing could hide, is loaded in the caller's thread at normal
// priority before that thread starts. `threads`: decoding threads per study.
class Prefetcher {
public:
  Prefetcher(const Predictor& predictor, const StudyIndex& index, std::vector<std::string> uids, std::size_t depth,
             int threads, bool background)
      : predictor_(predictor), index_(index), uids_(std::move(uids)), depth_(depth), threads_(threads),
        background_(background) {
    if (depth_ > 0 && !background_) worker_ = std::thread([this] { produce(0); });
  }
  ~Prefetcher() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    changed_.notify_all();
    if (worker_.joinable()) worker_.join();
  }
  // The next study in order; nullopt when every study was handed out (or an interrupt stopped the loading).
  std::optional<PreparedStudy> next() {
    if (depth_ == 0 || (background_ && next_ == 0)) {
      if (next_ >= uids_.size() || interrupted()) return std::nullopt;
      PreparedStudy p = predictor_.prepare(index_, uids_[next_++], threads_);
      if (depth_ > 0) worker_ = std::thread([this] { produce(1); });
      return p;
    }
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [this] { return !queue_.empty() || finished_; });
    if (queue_.empty()) return std::nullopt;
    PreparedStudy p = std::move(queue_.front());
    queue_.pop_front();
    changed_.notify_all();
    return p;
  }

private:
  void produce(std::size_t first) {
    // Linux scheduling priority is per thread: this lowers the loading thread alone (best effort).
    if (background_) {
      if (::setpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)), 19) == 0)
        CSPINE_DEBUG("prefetch: loading up to {} studies ahead at nice 19 with {} decoding thread(s)", depth_, threads_);
      else
        CSPINE_DEBUG("prefetch: cannot lower the loading thread's priority: {}", std::strerror(errno));
    } else {
      CSPINE_DEBUG("prefetch: loading up to {} studies ahead with {} decoding thread(s)", depth_, threads_);
    }
    for (std::size_t i = first; i < uids_.size(); ++i) {
      const std::string& uid = uids_[i];
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [this] { return queue_.size() < depth_ || stop_; });
        if (stop_) break;
      }
      if (interrupted()) break;
      PreparedStudy p = predictor_.prepare(index_, uid, threads_);
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(std::move(p));
      changed_.notify_all();
    }
    std::lock_guard<std::mutex> lock(mutex_);
    finished_ = true;
    changed_.notify_all();
  }

  const Predictor& predictor_;
  const StudyIndex& index_;
  std::vector<std::string> uids_;
  std::size_t depth_, next_ = 0;
  int threads_;
  bool background_;
  std::thread worker_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<PreparedStudy> queue_;
  bool stop_ = false, finished_ = false;
};

// Peak resident memory of this process so far, in MB.
double peak_rss_mb() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;  // Linux: KiB
}

std::string now_iso() {
  const auto t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
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
  o.p.seg_model = o.seg_model.empty() ? default_model("seg.pt") : o.seg_model;
  o.p.cls_model = o.cls_model.empty() ? default_model("cls.pt") : o.cls_model;
  std::optional<TestRows> test;
  if (!o.test_csv.empty()) test = read_test_rows(o.test_csv);

  const Predictor predictor(o.p);
  const std::string device = predictor.device();
  log_info("models: " + o.p.seg_model + ", " + o.p.cls_model + " on " + device + (o.p.fp16 ? " (fp16)" : ""));
  const auto& prior = predictor.cls_contract().prior;

  const StudyIndex index = scan_studies(o.input, ScanOptions{o.p.threads});
  std::set<std::string> found;
  for (const auto& s : index.studies) found.insert(s.study_uid);
  std::vector<std::string> plan;  // studies to score, in output order
  std::vector<std::string> missing;
  if (test) {
    for (const auto& uid : test->studies) (found.count(uid) ? plan : missing).push_back(uid);
    std::set<std::string> wanted(test->studies.begin(), test->studies.end());
    for (const auto& uid : found)
      if (!wanted.count(uid)) log_info("study " + uid + " is not in " + o.test_csv + ": not scored");
  } else {
    plan.assign(found.begin(), found.end());
  }

  const json models = {{"segmentation", model_json(o.p.seg_model, predictor.seg_contract())},
                       {"classifier", model_json(o.p.cls_model, predictor.cls_contract())}};
  const json header = {{"cspine_progress", 1}, {"models", {{"segmentation", models["segmentation"]["fnv1a64"]},
                                                           {"classifier", models["classifier"]["fnv1a64"]}}}};
  std::vector<json> previous;
  Journal journal(o.output + ".progress.jsonl", header, o.resume, previous);
  std::map<std::string, json> done;
  for (auto& e : previous) {
    if (e.value("status", "") != "ok" || !e.contains("study_uid")) continue;  // failed ones are tried again
    const std::string uid = e["study_uid"].get<std::string>();
    done[uid] = std::move(e);
  }
  std::size_t resumed = 0;
  for (const auto& uid : plan) resumed += done.count(uid);
  if (o.resume) log_info("--resume: " + std::to_string(resumed) + " of " + std::to_string(plan.size()) + " studies already scored");
  for (const auto& uid : missing) {
    log_warn("study " + uid + " is named in " + o.test_csv + " but not found in " + o.input + ": its rows get the prior");
    done[uid] = missing_entry(uid);
  }

  auto entries_in_order = [&] {
    std::vector<json> out;
    const std::vector<std::string>& order = test ? test->studies : plan;
    for (const auto& uid : order)
      if (auto it = done.find(uid); it != done.end()) out.push_back(it->second);
    return out;
  };
  auto is_synthetic = [&](const char* kind) {
    const json& c = models[kind]["contract"];
    return c.is_object() && c.contains("provenance") && c["provenance"].value("synthetic", false);
  };
  const bool synthetic = is_synthetic("segmentation") || is_synthetic("classifier");
  // Loading ahead: on CUDA the models leave the CPU to the loader, so 2 studies ahead at normal priority; on the
  // CPU the models keep every core busy, so 1 study ahead at the lowest priority, which takes their idle time
  // and the time they wait for it without slowing them down (a normal-priority loader gained less and once lost:
  // the LibTorch threads wait for each other whenever one of them is descheduled). Measured on 2 cores, README.
  const bool cuda = device.rfind("cuda", 0) == 0;
  const std::size_t depth = o.prefetch ? *o.prefetch : cuda ? 2 : 1;
  auto write_outputs = [&](bool final_write) {
    const std::vector<json> entries = entries_in_order();
    write_text_atomically(o.output, kaggle_csv(entries, test ? &test->row_ids : nullptr, prior));
    if (!o.wide_csv.empty()) write_text_atomically(o.wide_csv, wide_csv(entries));
    if (!o.report.empty()) {
      json report = {{"cspine", version()},
                     {"created", now_iso()},
                     {"input", o.input},
                     {"device", device},
                     {"fp16", o.p.fp16},
                     {"batch_size", predictor.batch_size()},
                     {"preprocess", predictor.preprocesses_on_device() ? "device" : "host"},
                     {"prefetch", depth},
                     {"complete", final_write},
                     {"peak_rss_mb", std::round(peak_rss_mb())},
                     {"models", models},
                     {"studies", entries}};
      if (synthetic)
        report["note"] = "these models were trained on synthetic phantoms only: not validated on real CT, not for clinical use";
      write_text_atomically(o.report, dump_json(report, 1) + "\n");
    }
  };

  Progress progress(plan.size() - resumed, log_level() <= LogLevel::info);
  std::size_t n_done = resumed, n_failed = 0, n_ok_here = 0;
  int first_failure = 0;
  StageSeconds sum;
  auto last_flush = Clock::now();
  bool stopped = false;
  std::vector<std::string> todo;
  for (const auto& uid : plan)
    if (!done.count(uid)) todo.push_back(uid);
  Prefetcher prefetcher(predictor, index, todo, depth, o.p.threads, /*background=*/!cuda);
  for (const auto& uid : todo) {
    if (interrupted()) {
      stopped = true;
      break;
    }
    const auto t0 = Clock::now();
    json entry;
    std::string what;
    try {
      const std::string mask = o.masks.empty() ? "" : (fs::path(o.masks) / (uid + ".nii.gz")).string();
      std::optional<PreparedStudy> prepared = prefetcher.next();
      const double waited = std::chrono::duration<double>(Clock::now() - t0).count();
      if (!prepared) {  // the loading stopped on an interrupt
        stopped = true;
        break;
      }
      StudyResult r = predictor.run(std::move(*prepared), mask);
      r.seconds.wait = waited;
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
    journal.append(entry);
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
  for (const auto& uid : plan)
    if (auto it = done.find(uid); it != done.end() && it->second.value("status", "") == "ok") ++n_ok;
  char line[320];
  std::snprintf(line, sizeof line,
                "%zu studies scored, %zu failed, %zu missing from the input%s; %.1f s in all, peak memory %.0f MB", n_ok,
                n_failed, missing.size(), resumed ? (" (" + std::to_string(resumed) + " from the journal)").c_str() : "",
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
  if (stopped) throw InterruptedError("interrupted: " + std::to_string(n_done) + " of " + std::to_string(plan.size()) +
                                      " studies are saved; run again with --resume to finish");
  if (n_failed == 0) return 0;
  if (n_ok > 0) return to_int(ExitCode::partial);
  return first_failure;  // every study failed: the first failure's own code
}

}  // namespace cspine
