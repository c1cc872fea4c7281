#include "support/fixtures.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>

namespace cspine::test {

TempDir::TempDir() {
  static std::atomic<int> counter{0};
  path_ = fs::temp_directory_path() /
          ("cspine-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  fs::remove_all(path_);
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string samples_dir() {
  if (const char* env = std::getenv("CSPINE_SAMPLES_DIR")) return env;
  return CSPINE_SAMPLES_DIR;
}

std::vector<int16_t> phantom_slice(int rows, int columns, int k, unsigned seed) {
  std::vector<int16_t> hu(static_cast<std::size_t>(rows) * static_cast<std::size_t>(columns));
  std::mt19937 rng(seed * 7919u + static_cast<unsigned>(k));
  std::normal_distribution<double> noise(0.0, 12.0);
  const double cx = columns * 0.5, cy = rows * 0.55;
  for (int y = 0; y < rows; ++y) {
    for (int x = 0; x < columns; ++x) {
      const double dx = (x - cx) / (columns * 0.42), dy = (y - cy) / (rows * 0.38);
      const double r = std::sqrt(dx * dx + dy * dy);
      double v = -1000.0;
      if (r < 1.0) v = 40.0 + noise(rng);              // soft tissue
      const double bx = (x - cx) / (columns * 0.12), by = (y - cy * 1.1) / (rows * 0.12);
      const double b = std::sqrt(bx * bx + by * by);
      if (b < 1.0) v = (b > 0.75 ? 1300.0 : 250.0) + noise(rng) + 5.0 * k;  // cortical shell, cancellous core
      if (r > 0.35 && r < 0.45 && y < cy) v = -950.0;   // airway-ish crescent
      hu[static_cast<std::size_t>(y) * columns + x] = static_cast<int16_t>(std::lround(v));
    }
  }
  return hu;
}

WrittenSeries write_series(const std::string& dir, const SeriesSpec& spec, const std::function<std::string(int)>& name) {
  fs::create_directories(dir);
  WrittenSeries out;
  out.study_uid = spec.study_uid.empty() ? make_uid() : spec.study_uid;
  out.series_uid = spec.series_uid.empty() ? make_uid() : spec.series_uid;
  const auto& o = spec.orientation;
  const std::array<double, 3> n{o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5], o[0] * o[4] - o[1] * o[3]};
  for (int k = 0; k < spec.slices; ++k) {
    CtSliceSpec s;
    s.study_uid = out.study_uid;
    s.series_uid = out.series_uid;
    s.series_number = spec.series_number;
    s.rows = spec.rows;
    s.columns = spec.columns;
    s.pixel_spacing = spec.pixel_spacing;
    s.orientation = spec.orientation;
    for (int i = 0; i < 3; ++i) s.position[static_cast<std::size_t>(i)] = spec.origin[static_cast<std::size_t>(i)] + n[static_cast<std::size_t>(i)] * spec.spacing_z * k;
    s.slice_thickness = spec.spacing_z;
    s.instance_number = spec.head_first_numbering ? spec.slices - k : k + 1;
    s.is_signed = spec.is_signed;
    s.bits_stored = spec.bits_stored;
    s.rescale_slope = spec.slope;
    s.rescale_intercept = spec.intercept;
    s.image_type = spec.image_type;
    std::vector<int16_t> hu = phantom_slice(spec.rows, spec.columns, k, spec.seed);
    const std::string file = (fs::path(dir) / (name ? name(k) : std::to_string(k + 1) + ".dcm")).string();
    write_ct_slice(file, s, hu, spec.ts);
    out.files.push_back(file);
    out.hu.push_back(std::move(hu));
    out.z.push_back(spec.origin[0] * n[0] + spec.origin[1] * n[1] + spec.origin[2] * n[2] + spec.spacing_z * k);
  }
  return out;
}

int run_command(const std::string& command, std::string* out, std::string* err) {
  std::string cmd = command;
  std::string err_file;
  if (err) {
    err_file = (fs::temp_directory_path() / ("cspine-stderr-" + std::to_string(::getpid()) + "-" +
                                             std::to_string(reinterpret_cast<std::uintptr_t>(err))))
                   .string();
    cmd += " 2>" + err_file;
  }
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (!pipe) return -1;
  std::string captured;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) captured.append(buf, n);
  const int status = ::pclose(pipe);
  if (out) *out = captured;
  if (err) {
    std::ifstream in(err_file);
    std::stringstream ss;
    ss << in.rdbuf();
    *err = ss.str();
    fs::remove(err_file);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

long run_peak_rss_kb(const std::vector<std::string>& argv, int* exit_code) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    const int devnull = ::open("/dev/null", O_WRONLY);
    if (devnull >= 0) {
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
    }
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  int status = 0;
  struct rusage usage {};
  if (::wait4(pid, &status, 0, &usage) < 0) return -1;
  if (exit_code) *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return usage.ru_maxrss;
}

std::array<double, 3> lps_to_index(const Volume& v, const std::array<double, 3>& p) {
  const std::array<double, 3> d{p[0] - v.origin[0], p[1] - v.origin[1], p[2] - v.origin[2]};
  std::array<double, 3> idx{};
  for (int c = 0; c < 3; ++c) {
    const auto ax = v.axis(c);
    idx[static_cast<std::size_t>(c)] = (d[0] * ax[0] + d[1] * ax[1] + d[2] * ax[2]) / v.spacing[static_cast<std::size_t>(c)];
  }
  return idx;
}

Agreement agree(const Volume& ours, const Volume& ref, std::optional<int16_t> skip_ref) {
  Agreement a;
  for (int k = 0; k < ours.size[2]; ++k)
    for (int j = 0; j < ours.size[1]; ++j)
      for (int i = 0; i < ours.size[0]; ++i) {
        const auto idx = lps_to_index(ref, ours.voxel_to_lps(i, j, k));
        std::array<int, 3> r{};
        bool inside = true;
        for (std::size_t c = 0; c < 3; ++c) {
          r[c] = static_cast<int>(std::lround(idx[c]));
          if (std::abs(idx[c] - r[c]) > 1e-2 || r[c] < 0 || r[c] >= ref.size[c]) inside = false;
        }
        if (!inside) {
          ++a.outside;
          continue;
        }
        const int16_t rv = ref.at(r[0], r[1], r[2]);
        if (skip_ref && rv == *skip_ref) continue;
        ++a.compared;
        if (rv != ours.at(i, j, k)) ++a.mismatched;
      }
  return a;
}

std::string dcm2niix(const std::string& in, const std::string& out_dir) {
  fs::create_directories(out_dir);
  std::string log;
  const int rc = run_command("dcm2niix -z n -f ref -o " + q(out_dir) + " " + q(in), &log, &log);
  EXPECT_EQ(rc, 0) << log;
  for (auto& e : fs::directory_iterator(out_dir))
    if (e.path().extension() == ".nii") return e.path().string();
  ADD_FAILURE() << "dcm2niix wrote no NIfTI: " << log;
  return {};
}

bool have_dcm2niix() { return run_command("command -v dcm2niix >/dev/null") == 0; }

void edit_dicom_file(const std::string& path, const std::function<void(DcmDataset&)>& edit) {
  DcmFileFormat f;
  ASSERT_TRUE(f.loadFile(path.c_str()).good()) << path;
  const E_TransferSyntax xfer = f.getDataset()->getOriginalXfer();
  edit(*f.getDataset());
  ASSERT_TRUE(f.saveFile(path.c_str(), xfer).good()) << path;
}

SeriesSpec small_series(int slices, TransferSyntax ts) {
  SeriesSpec s;
  s.slices = slices;
  s.rows = s.columns = 32;
  s.ts = ts;
  return s;
}

}  // namespace cspine::test
