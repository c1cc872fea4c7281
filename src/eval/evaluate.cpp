// evaluate(): reads the inputs, computes every figure once on all studies and again on each bootstrap
// resample of studies, and formats the result as JSON or as the paper-style table.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "util/text.h"
#include "cspine/error.h"
#include "cspine/evaluate.h"
#include "eval/inputs.h"
#include "eval/metrics.h"
#include "util/log.h"

namespace cspine {

using eval::Weights;

namespace {

constexpr int kMetrics = 6;  // auc, sensitivity, specificity, precision, f1, accuracy
constexpr int kRows = kNumLabels + 1;  // + macro over C1..C7
constexpr int kScoreSlot = kRows * kMetrics;
constexpr int kLocalizationSlot = kScoreSlot + 1;
constexpr int kSlots = kLocalizationSlot + 1;

using Figures = std::array<std::optional<double>, kSlots>;

struct Prepared {
  std::size_t n = 0;
  std::array<std::vector<int>, kNumLabels> y;
  std::array<std::vector<double>, kNumLabels> p;
  std::array<std::vector<std::size_t>, kNumLabels> order;
  std::array<double, kNumLabels> threshold{};
  std::vector<double> study_loss;          // per study
  std::vector<char> fractured;             // any vertebra fractured
  std::vector<double> localization_credit; // share of the top-probability vertebrae that are fractured
};

std::array<std::optional<double>, kMetrics> confusion_figures(const eval::Confusion& c, std::optional<double> auc) {
  return {auc, eval::sensitivity(c), eval::specificity(c), eval::precision(c), eval::f1(c), eval::accuracy(c)};
}

Figures compute(const Prepared& d, const Weights& w) {
  Figures f;
  std::array<double, kMetrics> macro_sum{};
  std::array<int, kMetrics> macro_n{};
  for (int k = 0; k < kNumLabels; ++k) {
    const auto c = eval::confusion(d.y[k], d.p[k], d.threshold[k], w);
    const auto m = confusion_figures(c, eval::auc_sorted(d.y[k], d.p[k], d.order[k], w));
    for (int j = 0; j < kMetrics; ++j) {
      f[k * kMetrics + j] = m[j];
      if (k > 0 && m[j]) macro_sum[j] += *m[j], ++macro_n[j];
    }
  }
  for (int j = 0; j < kMetrics; ++j)
    if (macro_n[j]) f[kNumLabels * kMetrics + j] = macro_sum[j] / macro_n[j];
  double loss = 0, weight = 0, credit = 0, fractured = 0;
  for (std::size_t i = 0; i < d.n; ++i) {
    const double wi = w.empty() ? 1.0 : w[i];
    loss += wi * d.study_loss[i];
    weight += wi;
    if (d.fractured[i]) credit += wi * d.localization_credit[i], fractured += wi;
  }
  if (weight > 0) f[kScoreSlot] = loss / weight;
  if (fractured > 0) f[kLocalizationSlot] = credit / fractured;
  return f;
}

Estimate estimate(const std::optional<double>& value, const std::vector<double>& samples) {
  Estimate e;
  e.value = value;
  e.resamples = static_cast<int>(samples.size());
  if (value && !samples.empty()) {
    e.lo = eval::percentile(samples, 0.025);
    e.hi = eval::percentile(samples, 0.975);
  }
  return e;
}

// The vertebrae with the highest probability (several when tied).
std::vector<int> top_vertebrae(const eval::Row& p) {
  double best = -1;
  for (int v = 1; v < kNumLabels; ++v) best = std::max(best, p[v]);
  std::vector<int> top;
  for (int v = 1; v < kNumLabels; ++v)
    if (p[v] == best) top.push_back(v - 1);
  return top;
}

AttentionAlignment attention(const eval::LabelSet& labels, const std::map<std::string, eval::ReportStudy>& report,
                             const std::map<std::string, std::vector<int>>& boxes) {
  AttentionAlignment a;
  for (std::size_t i = 0; i < labels.uids.size(); ++i) {
    const std::string& uid = labels.uids[i];
    for (int v = 0; v < 7; ++v) {
      if (labels.y[i][v + 1] < 0.5) continue;
      auto rs = report.find(uid);
      if (rs == report.end() || !rs->second[v]) {
        ++a.not_in_report;
        continue;
      }
      const auto& rv = *rs->second[v];
      if (!rv.key_slice_number) {
        ++a.no_key_slice;
        continue;
      }
      auto bs = boxes.find(uid);
      if (bs == boxes.end() || bs->second.empty()) {
        ++a.no_boxes;
        continue;
      }
      const int key = *rv.key_slice_number;
      const auto [lo, hi] = std::minmax_element(bs->second.begin(), bs->second.end());
      ++a.considered;
      if (key >= *lo && key <= *hi) ++a.aligned;
      if (rv.slice_range) {
        std::vector<int> inside;
        for (int s : bs->second)
          if (s >= (*rv.slice_range)[0] && s <= (*rv.slice_range)[1]) inside.push_back(s);
        if (!inside.empty()) {
          const auto [vlo, vhi] = std::minmax_element(inside.begin(), inside.end());
          ++a.considered_vertebra;
          if (key >= *vlo && key <= *vhi) ++a.aligned_vertebra;
        }
      }
    }
  }
  if (a.considered) a.share = static_cast<double>(a.aligned) / a.considered;
  if (a.considered_vertebra) a.share_vertebra = static_cast<double>(a.aligned_vertebra) / a.considered_vertebra;
  return a;
}

}  // namespace

EvaluationResult evaluate(const EvaluateConfig& config) {
  if (config.bootstrap < 0) throw UsageError("--bootstrap must be 0 or more");
  if (!config.youden && !(config.threshold >= 0.0 && config.threshold <= 1.0))
    throw UsageError("--threshold must be in [0, 1] or 'youden'");
  if (config.report.empty() != config.bboxes.empty())
    throw UsageError("attention alignment needs both --report and --bboxes");
  const auto t0 = std::chrono::steady_clock::now();

  EvaluationResult r;
  r.config = config;
  const eval::LabelSet labels = eval::read_labels(config.labels);
  const std::vector<eval::Row> preds = eval::read_predictions(config.predictions, labels, &r.predictions_format);
  std::map<std::string, eval::ReportStudy> report;
  std::map<std::string, std::vector<int>> boxes;
  if (!config.report.empty()) {
    report = eval::read_report(config.report);
    boxes = eval::read_box_slices(config.bboxes);
    std::size_t unknown = 0;
    for (const auto& [uid, st] : report)
      if (!labels.index.count(uid)) ++unknown;
    if (unknown) CSPINE_WARN("{}: {} studies are not in the labels and are ignored", config.report, unknown);
  }
  CSPINE_INFO("evaluate: {} studies, predictions '{}' ({}), labels '{}'", labels.uids.size(), config.predictions,
              r.predictions_format, config.labels);

  Prepared d;
  d.n = labels.uids.size();
  r.studies = static_cast<int>(d.n);
  for (int k = 0; k < kNumLabels; ++k) {
    d.y[k].resize(d.n);
    d.p[k].resize(d.n);
    for (std::size_t i = 0; i < d.n; ++i) {
      d.y[k][i] = labels.y[i][k] > 0.5 ? 1 : 0;
      d.p[k][i] = preds[i][k];
    }
    d.order[k] = eval::ascending_order(d.p[k]);
    d.threshold[k] = config.threshold;
    if (config.youden) {
      const auto t = eval::youden_threshold(d.y[k], d.p[k]);
      if (t) {
        d.threshold[k] = *t;
      } else {
        d.threshold[k] = 0.5;
        CSPINE_WARN("{}: one class only, Youden's threshold is undefined; using 0.5", kLabelNames[k]);
      }
    }
    for (const auto& pt : eval::roc_curve(d.y[k], d.p[k])) r.roc[k].push_back({pt.fpr, pt.tpr});
  }
  d.study_loss.resize(d.n);
  d.fractured.resize(d.n);
  d.localization_credit.resize(d.n);
  r.localization_levels.resize(7);
  for (int v = 0; v < 7; ++v) r.localization_levels[v].level = kLabelNames[v + 1];
  std::array<double, 7> picked_correct{};
  std::array<double, 7> found{};
  for (std::size_t i = 0; i < d.n; ++i) {
    d.study_loss[i] = eval::study_log_loss(labels.y[i], preds[i]);
    bool any = false;
    for (int v = 1; v < kNumLabels; ++v) any = any || labels.y[i][v] > 0.5;
    d.fractured[i] = any;
    if (!any) continue;
    ++r.fractured_studies;
    const auto top = top_vertebrae(preds[i]);
    const double share = 1.0 / static_cast<double>(top.size());
    double credit = 0;
    for (int v : top) {
      const bool hit = labels.y[i][v + 1] > 0.5;
      r.localization_levels[v].picked += share;
      if (hit) picked_correct[v] += share, found[v] += share, credit += share;
    }
    d.localization_credit[i] = credit;
    for (int v = 0; v < 7; ++v)
      if (labels.y[i][v + 1] > 0.5) ++r.localization_levels[v].fractured;
  }
  for (int v = 0; v < 7; ++v) {
    auto& lv = r.localization_levels[v];
    if (lv.picked > 0) lv.pick_correct = picked_correct[v] / lv.picked;
    if (lv.fractured > 0) lv.found = found[v] / lv.fractured;
  }

  const Figures point = compute(d, {});
  std::array<std::vector<double>, kSlots> samples;
  std::mt19937_64 rng(config.seed);
  for (int b = 0; b < config.bootstrap; ++b) {
    const Figures f = compute(d, eval::resample_counts(d.n, rng));
    for (int s = 0; s < kSlots; ++s)
      if (f[s]) samples[s].push_back(*f[s]);
  }

  for (int row = 0; row < kRows; ++row) {
    LabelMetrics m;
    m.name = row < kNumLabels ? kLabelNames[row] : "macro_vertebrae";
    m.n = static_cast<int>(d.n);
    const int first = row < kNumLabels ? row : 1, last = row < kNumLabels ? row : kNumLabels - 1;
    for (int k = first; k <= last; ++k) {
      const auto c = eval::confusion(d.y[k], d.p[k], d.threshold[k]);
      m.tp += c.tp, m.fp += c.fp, m.tn += c.tn, m.fn += c.fn;
      m.positives += static_cast<int>(c.tp + c.fn);
    }
    if (row < kNumLabels) m.threshold = d.threshold[row];
    Estimate* slots[kMetrics] = {&m.auc, &m.sensitivity, &m.specificity, &m.precision, &m.f1, &m.accuracy};
    for (int j = 0; j < kMetrics; ++j) *slots[j] = estimate(point[row * kMetrics + j], samples[row * kMetrics + j]);
    r.labels.push_back(m);
  }
  r.competition_score = estimate(point[kScoreSlot], samples[kScoreSlot]);
  r.localization = estimate(point[kLocalizationSlot], samples[kLocalizationSlot]);
  if (!config.report.empty()) r.attention = attention(labels, report, boxes);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CSPINE_INFO("evaluate: done in {:.2f} s ({} bootstrap resamples)", secs, config.bootstrap);
  return r;
}

// ---------------------------------------------------------------------------------------------- JSON

namespace {
using nlohmann::json;

json opt(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

json estimate_json(const Estimate& e) {
  json j{{"value", opt(e.value)}, {"resamples", e.resamples}};
  j["ci95"] = (e.lo && e.hi) ? json::array({*e.lo, *e.hi}) : json(nullptr);
  return j;
}
}  // namespace

std::string evaluation_json(const EvaluationResult& r, int indent) {
  json j;
  j["format"] = "cspine-evaluate/1";
  j["inputs"] = {{"predictions", r.config.predictions},
                 {"predictions_format", r.predictions_format},
                 {"labels", r.config.labels},
                 {"report", r.config.report.empty() ? json(nullptr) : json(r.config.report)},
                 {"bboxes", r.config.bboxes.empty() ? json(nullptr) : json(r.config.bboxes)}};
  j["studies"] = r.studies;
  j["threshold"] = {{"mode", r.config.youden ? "youden" : "fixed"},
                    {"rule", "positive when probability >= threshold"}};
  if (!r.config.youden) j["threshold"]["value"] = r.config.threshold;
  j["bootstrap"] = {{"resamples", r.config.bootstrap},
                    {"seed", r.config.seed},
                    {"unit", "study"},
                    {"method", "percentile 2.5/97.5, linear interpolation"}};
  json labels = json::object();
  for (const auto& m : r.labels) {
    json l{{"n", m.n}, {"positives", m.positives}, {"threshold", opt(m.threshold)},
           {"tp", m.tp}, {"fp", m.fp}, {"tn", m.tn}, {"fn", m.fn},
           {"auc", estimate_json(m.auc)}, {"sensitivity", estimate_json(m.sensitivity)},
           {"specificity", estimate_json(m.specificity)}, {"precision", estimate_json(m.precision)},
           {"f1", estimate_json(m.f1)}, {"accuracy", estimate_json(m.accuracy)}};
    labels[m.name] = l;
  }
  j["metrics"] = labels;
  j["competition_score"] = estimate_json(r.competition_score);
  json loc = estimate_json(r.localization);
  loc["fractured_studies"] = r.fractured_studies;
  json levels = json::object();
  for (const auto& lv : r.localization_levels)
    levels[lv.level] = {{"picked", lv.picked}, {"pick_correct", opt(lv.pick_correct)},
                        {"fractured", lv.fractured}, {"found", opt(lv.found)}};
  loc["levels"] = levels;
  j["localization"] = loc;
  if (r.attention) {
    const auto& a = *r.attention;
    j["attention_alignment"] = {{"study_range", {{"share", opt(a.share)}, {"aligned", a.aligned}, {"considered", a.considered}}},
                                {"vertebra_range", {{"share", opt(a.share_vertebra)}, {"aligned", a.aligned_vertebra},
                                                    {"considered", a.considered_vertebra}}},
                                {"skipped", {{"not_in_report", a.not_in_report}, {"no_key_slice", a.no_key_slice},
                                             {"no_boxes", a.no_boxes}}}};
  } else {
    j["attention_alignment"] = nullptr;
  }
  return dump_json(j, indent) + "\n";
}

// ---------------------------------------------------------------------------------------------- table

namespace {

std::string num(const std::optional<double>& v, int prec = 3) {
  if (!v) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", prec, *v);
  return buf;
}

std::string with_ci(const Estimate& e, int prec = 3) {
  if (!e.value) return "n/a";
  std::string s = num(e.value, prec);
  if (e.lo && e.hi) s += " [" + num(e.lo, prec) + "-" + num(e.hi, prec) + "]";
  return s;
}

std::string pad(const std::string& s, std::size_t w, bool left = true) {
  if (s.size() >= w) return s;
  return left ? s + std::string(w - s.size(), ' ') : std::string(w - s.size(), ' ') + s;
}

}  // namespace

std::string evaluation_table(const EvaluationResult& r) {
  std::ostringstream o;
  const auto& c = r.config;
  o << "cspine evaluate: " << r.studies << " studies; predictions " << c.predictions << " (" << r.predictions_format
    << "), labels " << c.labels << "\n";
  if (c.youden) {
    o << "threshold: Youden's J per label (";
    for (int k = 0; k < kNumLabels; ++k) o << (k ? ", " : "") << kLabelNames[k] << " " << num(r.labels[k].threshold, 4);
    o << "); a prediction is positive when p >= threshold\n";
  } else {
    o << "threshold: " << num(c.threshold, 4) << " for every label; a prediction is positive when p >= threshold\n";
  }
  if (c.bootstrap > 0)
    o << "[95% CI]: percentile bootstrap over studies, " << c.bootstrap << " resamples, seed " << c.seed << "\n";
  else
    o << "no confidence intervals (--bootstrap 0)\n";
  o << "\n";
  const std::size_t wl = 16, wn = 6, wc = 22, wp = 10;
  o << pad("label", wl) << pad("n", wn, false) << pad("pos", wn, false) << "  " << pad("AUC [95% CI]", wc)
    << pad("sensitivity [95% CI]", wc) << pad("specificity [95% CI]", wc) << pad("precision", wp)
    << pad("F1 [95% CI]", wc) << "accuracy\n";
  for (const auto& m : r.labels) {
    o << pad(m.name == "macro_vertebrae" ? "macro (C1-C7)" : m.name, wl) << pad(std::to_string(m.n), wn, false)
      << pad(std::to_string(m.positives), wn, false) << "  " << pad(with_ci(m.auc), wc) << pad(with_ci(m.sensitivity), wc)
      << pad(with_ci(m.specificity), wc) << pad(num(m.precision.value), wp) << pad(with_ci(m.f1), wc)
      << num(m.accuracy.value) << "\n";
  }
  o << "(macro: mean over C1-C7 of each vertebra's figure; its pos counts fractured vertebrae)\n\n";
  o << "competition score (weighted log loss, lower is better): " << with_ci(r.competition_score, 4) << "\n";
  o << "localization accuracy (top-probability vertebra is fractured): " << with_ci(r.localization) << " over "
    << r.fractured_studies << " fractured studies\n";
  if (r.fractured_studies > 0) {
    o << "  " << pad("level", 7) << pad("top pick", 10, false) << pad("correct", 10, false) << pad("fractured", 11, false)
      << pad("ranked top", 12, false) << "\n";
    for (const auto& lv : r.localization_levels) {
      char picked[32];
      std::snprintf(picked, sizeof picked, "%.1f", lv.picked);
      o << "  " << pad(lv.level, 7) << pad(picked, 10, false) << pad(num(lv.pick_correct), 10, false)
        << pad(std::to_string(lv.fractured), 11, false) << pad(num(lv.found), 12, false) << "\n";
    }
  }
  if (r.attention) {
    const auto& a = *r.attention;
    o << "attention alignment (key slice within the study's box slices): " << num(a.share) << " (" << a.aligned << " of "
      << a.considered << " fractured vertebrae)\n";
    o << "  within the boxes inside the vertebra's slice_range: " << num(a.share_vertebra) << " (" << a.aligned_vertebra
      << " of " << a.considered_vertebra << ")\n";
    if (a.not_in_report + a.no_key_slice + a.no_boxes > 0)
      o << "  not counted: " << a.not_in_report << " not in the report, " << a.no_key_slice << " without key slice, "
        << a.no_boxes << " in studies without boxes\n";
  }
  // Say when an interval rests on fewer resamples than asked (AUC undefined in some resamples).
  if (c.bootstrap > 0) {
    for (const auto& m : r.labels) {
      const std::pair<const char*, const Estimate*> es[] = {{"AUC", &m.auc}, {"sensitivity", &m.sensitivity},
                                                           {"specificity", &m.specificity}, {"F1", &m.f1}};
      for (const auto& [name, e] : es)
        if (e->value && e->resamples < c.bootstrap)
          o << "note: " << m.name << " " << name << " CI from " << e->resamples << " of " << c.bootstrap
            << " resamples (undefined in the others)\n";
    }
  }
  return o.str();
}

}  // namespace cspine
