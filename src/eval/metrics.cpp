#include "eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace cspine::eval {

namespace {
inline long weight_of(const Weights& w, std::size_t i) { return w.empty() ? 1 : w[i]; }

std::optional<double> ratio(double num, double den) {
  if (den <= 0) return std::nullopt;
  return num / den;
}
}  // namespace

double study_log_loss(const Row& y, const Row& p) {
  double loss = 0, weights = 0;
  for (std::size_t k = 0; k < y.size(); ++k) {
    const double q = std::clamp(p[k], kClipLow, kClipHigh);
    const bool pos = y[k] > 0.5;
    const double w = pos ? kPositiveWeight[k] : kNegativeWeight[k];
    loss += w * -(pos ? std::log(q) : std::log(1.0 - q));
    weights += w;
  }
  return loss / weights;
}

double competition_score(const std::vector<Row>& y, const std::vector<Row>& p, const Weights& w) {
  double sum = 0, n = 0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    const long wi = weight_of(w, i);
    if (wi == 0) continue;
    sum += wi * study_log_loss(y[i], p[i]);
    n += wi;
  }
  return n > 0 ? sum / n : std::numeric_limits<double>::quiet_NaN();
}

std::vector<std::size_t> ascending_order(const std::vector<double>& p) {
  std::vector<std::size_t> order(p.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return p[a] < p[b]; });
  return order;
}

std::optional<double> auc_sorted(const std::vector<int>& y, const std::vector<double>& p,
                                 const std::vector<std::size_t>& order, const Weights& w) {
  // Walk groups of equal scores from the lowest: each positive beats every negative below its group and
  // ties (half) with the negatives inside it.
  double pairs = 0, neg_below = 0, pos_total = 0;
  std::size_t i = 0;
  while (i < order.size()) {
    std::size_t j = i;
    double pos = 0, neg = 0;
    while (j < order.size() && p[order[j]] == p[order[i]]) {
      const long wi = weight_of(w, order[j]);
      (y[order[j]] ? pos : neg) += static_cast<double>(wi);
      ++j;
    }
    pairs += pos * (neg_below + 0.5 * neg);
    neg_below += neg;
    pos_total += pos;
    i = j;
  }
  if (pos_total <= 0 || neg_below <= 0) return std::nullopt;
  return pairs / (pos_total * neg_below);
}

std::optional<double> auc(const std::vector<int>& y, const std::vector<double>& p, const Weights& w) {
  return auc_sorted(y, p, ascending_order(p), w);
}

Confusion confusion(const std::vector<int>& y, const std::vector<double>& p, double threshold, const Weights& w) {
  Confusion c;
  for (std::size_t i = 0; i < y.size(); ++i) {
    const long wi = weight_of(w, i);
    const bool pred = p[i] >= threshold;
    if (y[i]) (pred ? c.tp : c.fn) += wi;
    else (pred ? c.fp : c.tn) += wi;
  }
  return c;
}

std::optional<double> sensitivity(const Confusion& c) { return ratio(c.tp, c.tp + c.fn); }
std::optional<double> specificity(const Confusion& c) { return ratio(c.tn, c.tn + c.fp); }
std::optional<double> precision(const Confusion& c) { return ratio(c.tp, c.tp + c.fp); }
std::optional<double> f1(const Confusion& c) { return ratio(2.0 * c.tp, 2.0 * c.tp + c.fp + c.fn); }
std::optional<double> accuracy(const Confusion& c) { return ratio(c.tp + c.tn, c.tp + c.tn + c.fp + c.fn); }

std::vector<RocPoint> roc_curve(const std::vector<int>& y, const std::vector<double>& p) {
  const long pos = std::count_if(y.begin(), y.end(), [](int v) { return v != 0; });
  const long neg = static_cast<long>(y.size()) - pos;
  if (pos == 0 || neg == 0) return {};
  auto order = ascending_order(p);
  std::reverse(order.begin(), order.end());  // highest score first
  std::vector<RocPoint> pts{{std::numeric_limits<double>::infinity(), 0.0, 0.0}};
  long tp = 0, fp = 0;
  std::size_t i = 0;
  while (i < order.size()) {
    const double t = p[order[i]];
    while (i < order.size() && p[order[i]] == t) (y[order[i++]] ? tp : fp) += 1;
    pts.push_back({t, static_cast<double>(fp) / neg, static_cast<double>(tp) / pos});
  }
  return pts;
}

std::optional<double> youden_threshold(const std::vector<int>& y, const std::vector<double>& p) {
  const auto pts = roc_curve(y, p);
  std::optional<double> best;
  double best_j = -2;
  for (std::size_t k = 1; k < pts.size(); ++k) {  // skip the +inf point: it predicts nothing positive
    const double j = pts[k].tpr - pts[k].fpr;
    if (j > best_j + 1e-12) {
      best_j = j;
      best = pts[k].threshold;
    }
  }
  return best;
}

Weights resample_counts(std::size_t n, std::mt19937_64& rng) {
  Weights counts(n, 0);
  for (std::size_t i = 0; i < n; ++i) ++counts[static_cast<std::size_t>(rng() % n)];
  return counts;
}

std::optional<double> percentile(std::vector<double> values, double q) {
  if (values.empty()) return std::nullopt;
  std::sort(values.begin(), values.end());
  const double pos = q * static_cast<double>(values.size() - 1);
  const auto lo = static_cast<std::size_t>(std::floor(pos));
  const std::size_t hi = std::min(lo + 1, values.size() - 1);
  const double frac = pos - static_cast<double>(lo);
  return values[lo] + (values[hi] - values[lo]) * frac;
}

}  // namespace cspine::eval
