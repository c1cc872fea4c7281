// The predict pipeline's units, each tested alone with plain values (issue 15): the batch runner's plan, journal,
// prefetcher and progress; the writers; and the stages between the models (locator, crop sampler, aggregator).
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "cspine/error.h"
#include "cspine/labels.h"
#include "cspine/vertebrae.h"
#include "output/writers.h"
#include "pipeline/aggregator.h"
#include "pipeline/crop_sampler.h"
#include "pipeline/journal.h"
#include "pipeline/plan.h"
#include "pipeline/prefetcher.h"
#include "pipeline/progress.h"
#include "pipeline/vertebra_locator.h"
#include "support/fixtures.h"

using namespace cspine;
using namespace cspine::test;
using nlohmann::json;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

ModelContract classifier_contract(int min_slices = 5) {
  ModelContract c;
  c.kind = ModelKind::classifier;
  c.height = c.width = 16;
  c.slices_per_vertebra = 4;
  c.min_slices = min_slices;
  c.prior = {0.1, 0.2, 0.05, 0.05, 0.1, 0.15, 0.2};
  return c;
}

}  // namespace

TEST(Plan, AllStudiesInUidOrderOrTestCsvOrderWithMissing) {
  const std::vector<std::string> found = {"1.1", "1.2", "1.3"};
  const Plan all = make_plan(found, std::nullopt);
  EXPECT_EQ(all.score, found);
  EXPECT_EQ(all.order, found);
  EXPECT_TRUE(all.missing.empty());
  TestRows t;
  t.studies = {"1.3", "9.9", "1.1"};
  const Plan p = make_plan(found, t);
  EXPECT_EQ(p.score, (std::vector<std::string>{"1.3", "1.1"}));
  EXPECT_EQ(p.missing, (std::vector<std::string>{"9.9"}));
  EXPECT_EQ(p.order, t.studies);
}

TEST(Plan, AFilterSplitsItIntoDisjointShardsThatCoverIt) {
  std::vector<std::string> found;
  for (int i = 0; i < 11; ++i) found.push_back("1." + std::to_string(10 + i));
  const Plan p = make_plan(found, std::nullopt);
  std::multiset<std::string> seen;
  for (std::size_t k = 0; k < 4; ++k) {
    const Plan shard = filter_plan(p, [k](std::size_t i, const std::string&) { return i % 4 == k; });
    EXPECT_EQ(shard.score, shard.order);
    for (const auto& uid : shard.score) seen.insert(uid);
  }
  EXPECT_EQ(seen, std::multiset<std::string>(found.begin(), found.end()));
}

TEST(Journal, ResumeReadsBackWhatWasAppended) {
  TempDir tmp;
  const std::string path = tmp / "j.jsonl";
  const json header = {{"cspine_progress", 1}, {"models", {{"segmentation", "a"}, {"classifier", "b"}}}};
  {
    Journal j(path, header, false);
    EXPECT_TRUE(j.previous().empty());
    j.entry({{"study_uid", "1.1"}, {"status", "ok"}});
    j.entry({{"study_uid", "1.2"}, {"status", "failed"}});
  }
  { std::ofstream(path, std::ios::app) << "{\"study_uid\": \"1.3\", \"sta"; }  // a run killed mid-line
  Journal again(path, header, true);
  ASSERT_EQ(again.previous().size(), 2u);
  EXPECT_EQ(again.previous()[1]["status"], "failed");
  const std::string text = slurp(path);  // rewritten without the half line
  EXPECT_EQ(text.find("1.3"), std::string::npos) << text;
  // Without --resume the journal starts over.
  Journal fresh(path, header, false);
  EXPECT_TRUE(fresh.previous().empty());
  EXPECT_EQ(slurp(path), header.dump() + "\n");
}

TEST(Journal, ResumeRefusesOtherModelsAndForeignFiles) {
  TempDir tmp;
  const std::string path = tmp / "j.jsonl";
  const json header = {{"cspine_progress", 1}, {"models", {{"segmentation", "a"}, {"classifier", "b"}}}};
  { Journal j(path, header, false); }
  json other = header;
  other["models"]["classifier"] = "c";
  EXPECT_THROW(Journal(path, other, true), UsageError);
  std::ofstream(path) << "not json\n{\"study_uid\": \"1\"}\n";
  EXPECT_THROW(Journal(path, header, true), UsageError);
  std::ofstream(path) << "{\"something\": 1}\n";
  EXPECT_THROW(Journal(path, header, true), InvalidInputError);
}

TEST(Prefetcher, HandsOutEveryStudyInOrderAndStaysWithinItsDepth) {
  const std::vector<std::string> uids = {"a", "b", "c", "d", "e"};
  for (const std::size_t depth : {0u, 1u, 2u}) {
    for (const bool background : {false, true}) {
      std::atomic<int> loaded{0}, taken{0}, max_ahead{0};
      Prefetcher pf(
          [&](const std::string& uid) {
            const int ahead = ++loaded - taken;
            int m = max_ahead;
            while (ahead > m && !max_ahead.compare_exchange_weak(m, ahead)) {
            }
            PreparedStudy p;
            p.study_uid = uid;
            return p;
          },
          uids, depth, background);
      std::vector<std::string> got;
      while (auto p = pf.next()) {
        ++taken;
        got.push_back(p->study_uid);
        std::this_thread::sleep_for(std::chrono::milliseconds(5));  // the "models" take a while
      }
      EXPECT_EQ(got, uids) << "depth " << depth << " background " << background;
      EXPECT_LE(max_ahead, static_cast<int>(depth) + 1) << "depth " << depth;
    }
  }
}

TEST(Progress, RateAndEtaText) {
  EXPECT_EQ(Progress::clock_text(3725), "1:02:05");
  EXPECT_EQ(Progress::clock_text(0), "0:00:00");
  Progress p(10, false);
  EXPECT_NE(p.rate_text(0).find("studies/s, ETA"), std::string::npos);
}

TEST(Writers, CsvAndReportFromASnapshot) {
  TempDir tmp;
  json ok = {{"study_uid", "1.1"}, {"status", "ok"}, {"patient_overall", 0.5}, {"vertebrae", json::object()}};
  for (std::size_t k = 0; k < kVertebrae; ++k) ok["vertebrae"][kVertebraNames[k]] = {{"probability", 0.1 * (k + 1)}};
  const json failed = {{"study_uid", "1.2"}, {"status", "failed"}};
  const std::array<double, 7> prior = {0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07};
  TestRows t;
  t.row_ids = {row_id("1.2", 3), row_id("1.1", 0), row_id("1.1", 7)};
  KaggleCsvWriter kaggle(tmp / "s.csv", t, prior);
  WideCsvWriter wide(tmp / "w.csv");
  ReportWriter report(tmp / "r.json", {{"device", "cpu"}});
  const std::vector<json> entries = {ok, failed};
  for (Writer* w : std::initializer_list<Writer*>{&kaggle, &wide, &report}) w->snapshot({entries, true});
  EXPECT_EQ(slurp(tmp / "s.csv"), "row_id,fractured\n1.2_C3,0.030000\n1.1_patient_overall,0.500000\n1.1_C7,0.700000\n");
  EXPECT_EQ(slurp(tmp / "w.csv").substr(slurp(tmp / "w.csv").find('\n') + 1),
            "1.1,0.500000,0.100000,0.200000,0.300000,0.400000,0.500000,0.600000,0.700000\n");
  const json r = json::parse(slurp(tmp / "r.json"));
  EXPECT_EQ(r["device"], "cpu");
  EXPECT_EQ(r["complete"], true);
  EXPECT_EQ(r["studies"].size(), 2u);
}

TEST(Writers, MaskWriterWritesTheResultsLabelMapOnTheCtGrid) {
  TempDir tmp;
  StudyResult r;
  r.study_uid = "1.2.3";
  r.size = {6, 4, 3};
  r.geometry.size = r.size;
  r.geometry.spacing = {0.5, 0.5, 2.0};
  r.labels.cols = 3;
  r.labels.rows = 2;
  r.labels.slices = 3;
  r.labels.labels = {0, 1, 1, 2, 2, 0, /**/ 3, 3, 0, 0, 4, 4, /**/ 7, 0, 0, 0, 0, 5};
  NiftiMaskWriter(tmp.str()).study(r);
  const auto back = read_labels_on_grid(tmp / "1.2.3.nii.gz", r.geometry);
  EXPECT_EQ(back, r.label_map());
  EXPECT_EQ(back.size(), 6u * 4u * 3u);
  EXPECT_EQ(back[0], 0);
  EXPECT_EQ(back[2], 1);  // nearest: output column 2 <- source column 1
}

TEST(Stages, LocatorCleansAndLocatesOnTheCtGrid) {
  LabelGrid g;
  g.cols = 4;
  g.rows = 4;
  g.slices = 2;
  g.labels.assign(32, 0);
  g.labels[5] = g.labels[6] = g.labels[16 + 5] = 2;  // a C2 blob on both slices
  g.labels[15] = 2;                                  // and a stray C2 voxel, not connected
  const LocatedVertebrae l = locate_vertebrae(g, 8, 8);
  EXPECT_EQ(l.cleanup_voxels, 1u);
  EXPECT_EQ(g.labels[15], 0);
  ASSERT_TRUE(l.extents[1].has_value());
  EXPECT_FALSE(l.extents[0].has_value());
  EXPECT_EQ(l.extents[1]->slices, 2);
  EXPECT_EQ(l.extents[1]->x0, 2);  // source column 1 covers output columns 2-3
  EXPECT_EQ(l.extents[1]->x1, 5);
}

TEST(Stages, CropSamplerFallsBackForAbsentAndThinVertebrae) {
  std::array<std::optional<VertebraExtent>, 7> ex;
  VertebraExtent thick;
  thick.label = 1;
  thick.z0 = 0, thick.z1 = 9, thick.x0 = 2, thick.x1 = 5, thick.y0 = 2, thick.y1 = 5, thick.slices = 10;
  VertebraExtent thin = thick;
  thin.label = 2;
  thin.z1 = 2;
  thin.slices = 3;
  ex[0] = thick;
  ex[1] = thin;
  const auto plan = plan_vertebrae(ex, classifier_contract());
  EXPECT_EQ(plan[0].fallback, Fallback::none);
  EXPECT_EQ(plan[0].picked, (std::vector<int>{0, 3, 6, 9}));
  EXPECT_EQ(plan[1].fallback, Fallback::too_few_slices);
  EXPECT_EQ(plan[2].fallback, Fallback::not_found);
  const CropRequest r = device_crop_request(plan, classifier_contract(), 10);
  EXPECT_EQ(r.items, 7);
  EXPECT_GT(r.boxes[2], 0);  // C1 has a crop
  EXPECT_EQ(r.boxes[5], 0);  // C2 is zeros
}

TEST(Stages, AggregatorUsesPriorForFallbacksAndNoisyOr) {
  const ModelContract c = classifier_contract();
  std::array<VertebraResult, 7> v;
  for (auto& x : v) x.fallback = Fallback::not_found;
  v[2].fallback = Fallback::none;
  v[2].picked = {10, 11, 12, 13};
  ClassifierOutput out;
  out.logits[2] = 0.0;
  out.probability[2] = 0.5;  // the classifier stage applies the contract's activation / ensemble rule
  out.attention.assign(7 * 4, 0.0f);
  out.attention[2 * 4 + 3] = 0.9f;
  const double overall = aggregate(out, c, v);
  EXPECT_DOUBLE_EQ(v[2].probability, 0.5);
  EXPECT_EQ(v[2].key, 3);
  EXPECT_DOUBLE_EQ(v[0].probability, c.prior[0]);
  std::array<double, 7> p = c.prior;
  p[2] = 0.5;
  EXPECT_DOUBLE_EQ(overall, noisy_or(p));
}
