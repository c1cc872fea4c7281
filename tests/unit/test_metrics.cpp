// Metric functions against hand-computed cases: perfect, inverted and constant predictions, ties, the
// competition's weighted log loss, Youden's threshold and the bootstrap helpers.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "eval/inputs.h"
#include "eval/metrics.h"

using namespace cspine::eval;

TEST(Auc, PerfectInvertedConstant) {
  const std::vector<int> y{0, 0, 1, 1, 0, 1};
  EXPECT_DOUBLE_EQ(*auc(y, {0.1, 0.2, 0.8, 0.9, 0.3, 0.7}), 1.0);
  EXPECT_DOUBLE_EQ(*auc(y, {0.9, 0.8, 0.2, 0.1, 0.7, 0.3}), 0.0);
  EXPECT_DOUBLE_EQ(*auc(y, {0.5, 0.5, 0.5, 0.5, 0.5, 0.5}), 0.5);
}

TEST(Auc, TiesCountHalf) {
  // Positives score 0.4 and 0.8, negatives 0.1 and 0.4. Pairs (pos, neg): (0.4, 0.1) 1, (0.4, 0.4) 0.5,
  // (0.8, 0.1) 1, (0.8, 0.4) 1: 3.5 of 4 = 0.875.
  EXPECT_DOUBLE_EQ(*auc({0, 1, 0, 1}, {0.1, 0.4, 0.4, 0.8}), 0.875);
  // All tied but one negative below: pos {0.5, 0.5}, neg {0.2, 0.5}: (1 + 0.5) * 2 / 4 = 0.75.
  EXPECT_DOUBLE_EQ(*auc({1, 1, 0, 0}, {0.5, 0.5, 0.2, 0.5}), 0.75);
}

TEST(Auc, UndefinedWithOneClass) {
  EXPECT_FALSE(auc({1, 1, 1}, {0.1, 0.5, 0.9}).has_value());
  EXPECT_FALSE(auc({0, 0}, {0.1, 0.5}).has_value());
  // Weights that drop every negative make it undefined too.
  EXPECT_FALSE(auc({0, 1, 1}, {0.1, 0.5, 0.9}, {0, 2, 1}).has_value());
}

TEST(Auc, WeightsEqualDuplication) {
  const std::vector<int> y{0, 1, 0, 1, 1};
  const std::vector<double> p{0.3, 0.3, 0.6, 0.2, 0.9};
  const Weights w{2, 0, 1, 3, 1};
  std::vector<int> yy;
  std::vector<double> pp;
  for (std::size_t i = 0; i < y.size(); ++i)
    for (int r = 0; r < w[i]; ++r) yy.push_back(y[i]), pp.push_back(p[i]);
  EXPECT_DOUBLE_EQ(*auc(y, p, w), *auc(yy, pp));
}

TEST(CompetitionScore, HandComputedTwoStudies) {
  // Study A: y = overall 1, C2 1, others 0; p = overall 0.9, C2 0.6, others 0.2.
  //   weights 14 (overall +) + 2 (C2 +) + 6 x 1 = 22
  //   loss = [14 (-ln 0.9) + 2 (-ln 0.6) + 6 (-ln 0.8)] / 22
  //        = [14 x 0.1053605 + 2 x 0.5108256 + 6 x 0.2231436] / 22 = 3.8355598 / 22 = 0.1743436
  // Study B: all 0; p = overall 0.2, C1..C7 0.1.
  //   weights 7 + 7 x 1 = 14; loss = [7 (-ln 0.8) + 7 (-ln 0.9)] / 14 = (0.2231436 + 0.1053605) / 2 = 0.1642520
  // Score: the mean, (0.1743436 + 0.1642520) / 2 = 0.1692978.
  const Row ya{1, 0, 1, 0, 0, 0, 0, 0}, pa{0.9, 0.2, 0.6, 0.2, 0.2, 0.2, 0.2, 0.2};
  const Row yb{0, 0, 0, 0, 0, 0, 0, 0}, pb{0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1};
  const double a = (14 * -std::log(0.9) + 2 * -std::log(0.6) + 6 * -std::log(0.8)) / 22;
  const double b = (7 * -std::log(0.8) + 7 * -std::log(0.9)) / 14;
  EXPECT_NEAR(study_log_loss(ya, pa), a, 1e-15);
  EXPECT_NEAR(study_log_loss(yb, pb), b, 1e-15);
  EXPECT_NEAR(a, 0.1743436, 1e-7);
  EXPECT_NEAR(b, 0.1642520, 1e-7);
  EXPECT_NEAR(competition_score({ya, yb}, {pa, pb}), 0.1692978, 1e-7);
  // Weights: study B counted twice.
  EXPECT_NEAR(competition_score({ya, yb}, {pa, pb}, {1, 2}), (a + 2 * b) / 3, 1e-15);
}

TEST(CompetitionScore, PerfectAndClipped) {
  const Row y{1, 0, 1, 0, 0, 0, 0, 1};
  EXPECT_LT(competition_score({y}, {y}), 1e-14);
  EXPECT_GE(competition_score({y}, {y}), 0.0);
  // Fully wrong: every loss is about -ln(1e-15) = 34.539, whatever the weights (a negative predicted 1 is
  // clipped to 1 - 1e-15, and 1 - (1 - 1e-15) = 9.992e-16 in double, exactly as in sklearn's log_loss).
  Row wrong{};
  for (int k = 0; k < 8; ++k) wrong[k] = 1 - y[k];
  EXPECT_NEAR(competition_score({y}, {wrong}), 34.539, 1e-3);
}

TEST(Confusion, ThresholdIsInclusive) {
  const std::vector<int> y{1, 1, 0, 0, 1};
  const std::vector<double> p{0.5, 0.4, 0.5, 0.1, 0.9};
  const auto c = confusion(y, p, 0.5);
  EXPECT_EQ(c.tp, 2);
  EXPECT_EQ(c.fn, 1);
  EXPECT_EQ(c.fp, 1);
  EXPECT_EQ(c.tn, 1);
  EXPECT_DOUBLE_EQ(*sensitivity(c), 2.0 / 3);
  EXPECT_DOUBLE_EQ(*specificity(c), 0.5);
  EXPECT_DOUBLE_EQ(*precision(c), 2.0 / 3);
  EXPECT_DOUBLE_EQ(*f1(c), 4.0 / 6);
  EXPECT_DOUBLE_EQ(*accuracy(c), 0.6);
  // Nothing predicted positive and no positives: precision and F1 undefined, no NaN.
  const auto none = confusion({0, 0}, {0.1, 0.2}, 0.5);
  EXPECT_FALSE(precision(none).has_value());
  EXPECT_FALSE(f1(none).has_value());
  EXPECT_FALSE(sensitivity(none).has_value());
  EXPECT_DOUBLE_EQ(*specificity(none), 1.0);
}

TEST(Roc, CurveAndYouden) {
  // Descending: 0.9 (+), 0.8 (+), 0.7 (-), 0.35 (+), 0.3 (-), 0.1 (-); 3 positives, 3 negatives.
  // J = tpr - fpr: 0.9: 1/3; 0.8: 2/3; 0.7: 1/3; 0.35: 2/3; 0.3: 1/3; 0.1: 0. Tie of 2/3: highest, 0.8.
  const std::vector<int> y{0, 0, 1, 1, 0, 1};
  const std::vector<double> p{0.1, 0.3, 0.35, 0.8, 0.7, 0.9};
  const auto roc = roc_curve(y, p);
  ASSERT_EQ(roc.size(), 7u);
  EXPECT_DOUBLE_EQ(roc.front().fpr, 0.0);
  EXPECT_DOUBLE_EQ(roc.front().tpr, 0.0);
  EXPECT_DOUBLE_EQ(roc.back().fpr, 1.0);
  EXPECT_DOUBLE_EQ(roc.back().tpr, 1.0);
  EXPECT_DOUBLE_EQ(*youden_threshold(y, p), 0.8);
  EXPECT_FALSE(youden_threshold({1, 1}, {0.2, 0.3}).has_value());
  // Tied scores make one point.
  EXPECT_EQ(roc_curve({0, 1, 0, 1}, {0.5, 0.5, 0.5, 0.5}).size(), 2u);
}

TEST(Bootstrap, SameSeedSameResamples) {
  std::mt19937_64 a(7), b(7), c(8);
  const auto wa = resample_counts(50, a), wb = resample_counts(50, b), wc = resample_counts(50, c);
  EXPECT_EQ(wa, wb);
  EXPECT_NE(wa, wc);
  int total = 0;
  for (int v : wa) total += v;
  EXPECT_EQ(total, 50);
}

TEST(Bootstrap, PercentileInterpolates) {
  EXPECT_DOUBLE_EQ(*percentile({4, 1, 3, 2}, 0.5), 2.5);
  EXPECT_DOUBLE_EQ(*percentile({4, 1, 3, 2}, 0.025), 1.075);
  EXPECT_DOUBLE_EQ(*percentile({4, 1, 3, 2}, 1.0), 4.0);
  EXPECT_FALSE(percentile({}, 0.5).has_value());
}

TEST(RowId, SplitsAtTheLastSuffix) {
  using P = std::pair<std::string, int>;
  EXPECT_EQ(split_row_id("1.2.826.0.1.3680043.10001_C1"), (P{"1.2.826.0.1.3680043.10001", 1}));
  EXPECT_EQ(split_row_id("1.2.826.0.1.3680043.10001_C7"), (P{"1.2.826.0.1.3680043.10001", 7}));
  EXPECT_EQ(split_row_id("1.2.3_patient_overall"), (P{"1.2.3", 0}));
  EXPECT_EQ(split_row_id("odd_C3_uid_C2"), (P{"odd_C3_uid", 2}));
  EXPECT_FALSE(split_row_id("1.2.3_C8").has_value());
  EXPECT_FALSE(split_row_id("1.2.3_C12").has_value());
  EXPECT_FALSE(split_row_id("1.2.3").has_value());
  EXPECT_FALSE(split_row_id("_patient_overall").has_value());
}
