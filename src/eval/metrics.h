// Pure metric functions on plain vectors: the competition's weighted log loss, AUC (Mann-Whitney, ties
// averaged), confusion metrics at a threshold, ROC and Youden's threshold, and the bootstrap helpers.
// Every function takes optional per-study integer weights (bootstrap counts): weight w counts a study w times.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <random>
#include <vector>

namespace cspine::eval {

using Weights = std::vector<int>;  // empty: every study once

inline constexpr double kClipLow = 1e-15;
inline constexpr double kClipHigh = 1.0 - 1e-15;

// Competition weights: patient_overall 14 (positive) / 7 (negative), each of C1..C7 2 / 1.
inline constexpr std::array<double, 8> kPositiveWeight = {14, 2, 2, 2, 2, 2, 2, 2};
inline constexpr std::array<double, 8> kNegativeWeight = {7, 1, 1, 1, 1, 1, 1, 1};

using Row = std::array<double, 8>;

// One study's loss: sum of weighted binary log losses over the 8 labels divided by the sum of the weights,
// predictions clipped to [1e-15, 1 - 1e-15].
double study_log_loss(const Row& y, const Row& p);
// The competition score: the mean of study_log_loss over studies (weighted by `w` when given).
double competition_score(const std::vector<Row>& y, const std::vector<Row>& p, const Weights& w = {});

// Area under the ROC curve = P(score of a positive > score of a negative) + 0.5 P(equal): the Mann-Whitney
// statistic with ties counted half. Empty when y has only one class (under the weights).
std::optional<double> auc(const std::vector<int>& y, const std::vector<double>& p, const Weights& w = {});
// Same with `order` = indices sorting p ascending (precomputed once for many bootstrap resamples).
std::optional<double> auc_sorted(const std::vector<int>& y, const std::vector<double>& p,
                                 const std::vector<std::size_t>& order, const Weights& w);
std::vector<std::size_t> ascending_order(const std::vector<double>& p);

struct Confusion {
  long tp = 0, fp = 0, tn = 0, fn = 0;
};
// A prediction is positive when p >= threshold.
Confusion confusion(const std::vector<int>& y, const std::vector<double>& p, double threshold, const Weights& w = {});

// Ratios; empty when the denominator is zero.
std::optional<double> sensitivity(const Confusion& c);  // tp / (tp + fn)
std::optional<double> specificity(const Confusion& c);  // tn / (tn + fp)
std::optional<double> precision(const Confusion& c);    // tp / (tp + fp)
std::optional<double> f1(const Confusion& c);           // 2 tp / (2 tp + fp + fn)
std::optional<double> accuracy(const Confusion& c);     // (tp + tn) / n

struct RocPoint {
  double threshold, fpr, tpr;
};
// ROC points from the strictest threshold down: (0, 0) first (threshold +inf), then one point per distinct
// score, ending at (1, 1). Empty when y has only one class.
std::vector<RocPoint> roc_curve(const std::vector<int>& y, const std::vector<double>& p);
// The threshold (one of the scores) maximising tpr - fpr; among equals, the highest threshold. Empty when
// y has only one class.
std::optional<double> youden_threshold(const std::vector<int>& y, const std::vector<double>& p);

// Bootstrap: n draws with replacement of the n studies, returned as a count per study. Uses
// rng() % n so that a seed gives the same resamples on every standard library.
Weights resample_counts(std::size_t n, std::mt19937_64& rng);

// Percentile of sorted-or-not values with linear interpolation between order statistics (numpy's default):
// q in [0, 1]. Empty input gives an empty result.
std::optional<double> percentile(std::vector<double> values, double q);

}  // namespace cspine::eval
