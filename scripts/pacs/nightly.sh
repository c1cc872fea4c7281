#!/usr/bin/env bash
# Nightly scoring against a PACS with DCMTK's network tools (docs/pacs.md):
#   C-FIND the CT studies of a date range -> C-GET their CT series -> cspine predict --dicom-out -> C-STORE the
#   SEG, SR and key image back into each study -> the CSV and report of the run, and one line per study.
# A study whose retrieval, scoring or sending failed is reported and tried again on the next run (its state stays
# pending in WORK/state/); a study sent and confirmed by a C-FIND of every object is done and never sent twice.
#
#   scripts/pacs/nightly.sh --host pacs.example.org --port 104 --called-aet PACS --calling-aet CSPINE \
#       --from 20261201 --to 20261201 --work /var/lib/cspine/nightly
#
# Exit: 0 every study of the range done (or already done), 1 some study failed (see the run's nightly.tsv; they are
# retried next run), 2 bad options, 3 the PACS could not be queried.
set -uo pipefail

usage() {
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
  cat <<'EOF'
Options:
  --host H             PACS host (default 127.0.0.1)
  --port N             PACS DICOM port (required)
  --called-aet AET     the PACS's AE title (default ORTHANC)
  --calling-aet AET    cspine's AE title, as configured in the PACS (default CSPINE)
  --from YYYYMMDD      first study date (default: yesterday)
  --to YYYYMMDD        last study date (default: --from)
  --modality M         modality the study must hold (default CT)
  --filter TAG=VALUE   extra C-FIND key at study level, e.g. --filter InstitutionName=NORTH (repeatable)
  --work DIR           working folder: state/, incoming/, results/dicom/, runs/<stamp>/ (required)
  --cspine BIN         the cspine binary (default: build/cspine beside this script, else cspine on PATH)
  --predict-arg ARG    extra argument for cspine predict, e.g. --predict-arg --threads --predict-arg 4 (repeatable)
  --timeout S          DICOM network timeout in seconds (default 30)
EOF
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HOST=127.0.0.1 PORT="" CALLED=ORTHANC CALLING=CSPINE FROM="" TO="" MODALITY=CT WORK="" TIMEOUT=30
CSPINE=""
FILTERS=() PREDICT_ARGS=()
while (($#)); do
  case "$1" in
    --host) HOST="$2"; shift 2 ;;
    --port) PORT="$2"; shift 2 ;;
    --called-aet) CALLED="$2"; shift 2 ;;
    --calling-aet) CALLING="$2"; shift 2 ;;
    --from) FROM="$2"; shift 2 ;;
    --to) TO="$2"; shift 2 ;;
    --modality) MODALITY="$2"; shift 2 ;;
    --filter) FILTERS+=(-k "$2"); shift 2 ;;
    --work) WORK="$2"; shift 2 ;;
    --cspine) CSPINE="$2"; shift 2 ;;
    --predict-arg) PREDICT_ARGS+=("$2"); shift 2 ;;
    --timeout) TIMEOUT="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "nightly: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ -n "$PORT" && -n "$WORK" ]] || { echo "nightly: --port and --work are required (see --help)" >&2; exit 2; }
[[ -n "$FROM" ]] || FROM="$(date -u -d yesterday +%Y%m%d)"
[[ -n "$TO" ]] || TO="$FROM"
[[ "$FROM$TO" =~ ^[0-9]{16}$ ]] || { echo "nightly: --from/--to must be YYYYMMDD" >&2; exit 2; }
if [[ -z "$CSPINE" ]]; then
  if [[ -x "$ROOT/build/cspine" ]]; then CSPINE="$ROOT/build/cspine"; else CSPINE="$(command -v cspine || true)"; fi
fi
[[ -x "$CSPINE" ]] || { echo "nightly: cspine binary not found (use --cspine)" >&2; exit 2; }
for tool in findscu getscu storescu dcmdump; do
  command -v "$tool" >/dev/null || { echo "nightly: $tool not found (Debian package dcmtk)" >&2; exit 2; }
done

NET=(-aet "$CALLING" -aec "$CALLED" -to "$TIMEOUT" -ta "$TIMEOUT" -td "$TIMEOUT")
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
RUN="$WORK/runs/$STAMP"
mkdir -p "$WORK/state" "$WORK/incoming" "$WORK/results/dicom" "$RUN/find" || exit 2
exec 9>"$WORK/nightly.lock"
flock -n 9 || { echo "nightly: another run holds $WORK/nightly.lock" >&2; exit 2; }
TSV="$RUN/nightly.tsv"
printf 'study_uid\tstatus\tobjects\tdetail\n' >"$TSV"
log() { echo "nightly: $*" >&2; }
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$TSV"; log "$1: $2${4:+ ($4)}"; }
t0=$(date +%s)

# One top-level attribute of a DICOM file ("" when absent; not the same tag nested in a sequence).
attr() {
  dcmdump -q +p +P "$2" "$1" 2>/dev/null | grep -E '^\([0-9a-fA-F]{4},[0-9a-fA-F]{4}\) ' | head -n1 |
    sed -n 's/^[^[]*\[\(.*\)\].*$/\1/p'
}

# C-FIND at `level` with keys; the responses' value of `want`, one per line, into stdout. Fails when the query does.
find_values() {
  local dir="$1" want="$2"; shift 2
  rm -rf "$dir"; mkdir -p "$dir"
  findscu -S "${NET[@]}" "$HOST" "$PORT" -X -od "$dir" "$@" >"$dir.log" 2>&1 || return 1
  local f
  for f in "$dir"/rsp*.dcm; do [[ -e "$f" ]] && attr "$f" "$want"; done
  return 0
}

# 1. The studies of the range.
if ! studies=$(find_values "$RUN/find/studies" StudyInstanceUID -k QueryRetrieveLevel=STUDY -k StudyInstanceUID \
    -k "StudyDate=$FROM-$TO" -k "ModalitiesInStudy=$MODALITY" "${FILTERS[@]}"); then
  log "C-FIND of studies $FROM-$TO on $CALLED@$HOST:$PORT failed:"; cat "$RUN/find/studies.log" >&2; exit 3
fi
mapfile -t STUDIES < <(printf '%s\n' "$studies" | sed '/^$/d' | sort -u)
log "${#STUDIES[@]} $MODALITY studies dated $FROM-$TO on $CALLED@$HOST:$PORT"

failed=0
to_score=()
to_send=()
for uid in "${STUDIES[@]}"; do
  [[ "$uid" =~ ^[0-9.]{1,64}$ ]] || { record "$uid" skipped-bad-uid 0 "not a UID"; continue; }
  state="$WORK/state/$uid"
  if [[ "$(cat "$state" 2>/dev/null)" == done* ]]; then record "$uid" already-done 0 "$(cat "$state")"; continue; fi
  if compgen -G "$WORK/results/dicom/$uid/*.dcm" >/dev/null; then to_send+=("$uid"); continue; fi  # scored, unsent
  # 2. Retrieve its series of the modality (C-GET: no listener needed on this side).
  if ! series=$(find_values "$RUN/find/$uid" SeriesInstanceUID -k QueryRetrieveLevel=SERIES -k "StudyInstanceUID=$uid" \
      -k SeriesInstanceUID -k "Modality=$MODALITY"); then
    echo "retrieve-failed" >"$state"; record "$uid" retrieve-failed 0 "series C-FIND failed"; failed=1; continue
  fi
  rm -rf "$WORK/incoming/$uid"; mkdir -p "$WORK/incoming/$uid"
  ok=1
  while read -r s; do
    [[ -z "$s" ]] && continue
    getscu -S "${NET[@]}" "$HOST" "$PORT" -od "$WORK/incoming/$uid" -k QueryRetrieveLevel=SERIES \
      -k "StudyInstanceUID=$uid" -k "SeriesInstanceUID=$s" >"$RUN/find/$uid.get.log" 2>&1 || ok=0
  done <<<"$series"
  n=$(find "$WORK/incoming/$uid" -type f | wc -l)
  if ((ok == 0 || n == 0)); then
    echo "retrieve-failed" >"$state"; record "$uid" retrieve-failed 0 "C-GET failed or returned nothing"
    rm -rf "$WORK/incoming/$uid"; failed=1; continue
  fi
  to_score+=("$uid")
done

# 3. Score what was retrieved: one predict run over the retrieved studies, its CSV and report kept with the run.
if ((${#to_score[@]})); then
  "$CSPINE" predict "$WORK/incoming" -o "$RUN/submission.csv" --wide-csv "$RUN/wide.csv" --report "$RUN/report.json" \
    --dicom-out "$WORK/results/dicom" "${PREDICT_ARGS[@]}" 2>"$RUN/predict.log"
  rc=$?
  log "cspine predict on ${#to_score[@]} studies: exit $rc (log: $RUN/predict.log)"
  for uid in "${to_score[@]}"; do
    if compgen -G "$WORK/results/dicom/$uid/*.dcm" >/dev/null; then
      to_send+=("$uid")
    elif grep -q "^$uid," "$RUN/wide.csv" 2>/dev/null; then  # scored, but no object (a dicom-out-skipped warning)
      echo "done: scored, no DICOM object (see the report's warnings)" >"$WORK/state/$uid"
      record "$uid" scored-no-objects 0 "see $RUN/report.json"
    else
      echo "score-failed" >"$WORK/state/$uid"; record "$uid" score-failed 0 "see $RUN/report.json"; failed=1
    fi
    rm -rf "$WORK/incoming/$uid"
  done
fi

# 4. Send the objects back (C-STORE) and confirm each one with a C-FIND at image level.
for uid in "${to_send[@]}"; do
  dir="$WORK/results/dicom/$uid"
  files=("$dir"/*.dcm)
  if ! storescu "${NET[@]}" -R -nh "$HOST" "$PORT" "${files[@]}" >"$RUN/find/$uid.store.log" 2>&1; then
    echo "send-failed" >"$WORK/state/$uid"; record "$uid" send-failed 0 "storescu: $(tail -n1 "$RUN/find/$uid.store.log")"
    failed=1; continue
  fi
  confirmed=0
  for f in "${files[@]}"; do
    sop=$(attr "$f" SOPInstanceUID)
    got=$(find_values "$RUN/find/$uid.confirm" SOPInstanceUID -k QueryRetrieveLevel=IMAGE -k "StudyInstanceUID=$uid" \
      -k "SeriesInstanceUID=$(attr "$f" SeriesInstanceUID)" -k "SOPInstanceUID=$sop") || got=""
    [[ -n "$sop" && "$got" == *"$sop"* ]] && confirmed=$((confirmed + 1))
  done
  if ((confirmed == ${#files[@]})); then
    echo "done: $confirmed objects sent $STAMP" >"$WORK/state/$uid"; record "$uid" sent "$confirmed" "confirmed by C-FIND"
  else
    echo "send-failed" >"$WORK/state/$uid"
    record "$uid" send-failed "$confirmed" "$confirmed of ${#files[@]} objects found in the PACS after C-STORE"; failed=1
  fi
done

log "run $STAMP: $(tail -n +2 "$TSV" | wc -l) studies, $(awk -F'\t' 'NR>1 && $2=="sent"{s+=$3} END{print s+0}' "$TSV") objects sent, $(( $(date +%s) - t0 )) s; $TSV"
exit $failed
