// Stage 5, the aggregator: logits and attention -> each vertebra's probability (sigmoid; the contract's prior for
// a vertebra that could not be classified), its key slice (highest attention), and patient_overall (noisy-or).
#pragma once
#include <array>

#include "cspine/contract.h"
#include "cspine/predict.h"
#include "pipeline/classifier.h"

namespace cspine {

// Fills probability, attention and key of each planned vertebra; returns patient_overall.
double aggregate(const ClassifierOutput& out, const ModelContract& contract, std::array<VertebraResult, 7>& vertebrae);

}  // namespace cspine
