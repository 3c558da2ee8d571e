#pragma once
// Runs an untrusted program (e.g. code a model wrote) in a sandboxed child process. Linux only; torch-free.
//
// What run_sandboxed() enforces, and where the kernel may refuse it:
//   - Wall-clock timeout: at SandboxOptions::timeout_seconds the sandbox is killed with SIGKILL, with every process
//     it started (they die with the init of its PID namespace; without that namespace its process group is killed,
//     which a process that called setsid() escapes).
//   - Resource limits (setrlimit, per process, inherited by the processes it starts): RLIMIT_CPU (CPU seconds),
//     RLIMIT_AS (address space, so reserving much virtual memory fails early), RLIMIT_FSIZE (largest file written),
//     RLIMIT_NPROC (processes and threads of the program's user) and RLIMIT_CORE 0 (no core files; a core_pattern
//     pipe helper may still be started by the kernel). The kernel never applies RLIMIT_NPROC to uid 0, not even to
//     uid 0 mapped into a user namespace, so a root caller's program runs as SandboxOptions::run_as_uid / run_as_gid
//     (default 65534, nobody): the interpreter and what the program reads must be readable by that user
//     (/usr/bin/python3 is; a pyenv under /root is not).
//   - A fresh working directory (mkdtemp under SandboxOptions::temp_parent), the program's current directory, HOME
//     and TMPDIR; removed afterwards, also after a timeout or an error.
//   - No inherited file descriptors: the program gets its stdin, stdout and stderr pipes and nothing else
//     (close_range, or every fd listed in /proc/self/fd).
//   - Namespaces, created with clone(2): user (CLONE_NEWUSER, so that an unprivileged caller can create the others),
//     network (empty: no network, not even loopback), PID, IPC (System V objects die with the sandbox) and mount.
//     Where user namespaces are refused (sysctl user.max_user_namespaces=0, a security module, or a chroot, where
//     the kernel always refuses them) a root caller creates the others directly; an unprivileged caller gets none.
//   - Writes refused outside the working directory: in the mount namespace the whole tree is cloned read-only and
//     nosuid (open_tree + mount_setattr(2), kernel >= 5.12) and becomes the root (chroot); the working directory is
//     attached writable into it; /tmp, /var/tmp, /run and /dev/shm are covered by empty read-only tmpfs (their files
//     hidden, their sockets unreachable); /proc is a new procfs of the PID namespace (an empty tmpfs where the kernel
//     refuses one). The tree is attached onto "/", or in a chroot whose "/" is no mount point onto the first of
//     /proc, /dev and /sys that is one, after making that mount private so that nothing propagates to the caller.
// Not isolated: reading files (the tree is read-only, not hidden); system calls (no seccomp filter); sockets outside
// the hidden directories (a read-only mount does not stop connect(2); running as nobody keeps root's sockets out of
// reach); disk usage (bounded per file by RLIMIT_FSIZE, not in total); memory the kernel holds for the program
// outside its address space (pipe buffers, memfd pages), which only a cgroup would bound.
//
// With SandboxOptions::require_isolation (the default), every isolation step the kernel refuses is an error naming
// the step and errno; otherwise the program runs with what remains and SandboxResult::isolation says what was
// missing.
//
// Between clone(2) and execve(2) the children make only async-signal-safe system calls on memory prepared before the
// clone (the caller may be multi-threaded: another thread may have held a lock of malloc), so run_sandboxed may be
// called from several threads at once.

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "grpo/error.hpp"

namespace grpo {

/// Limits and isolation of one sandboxed run.
struct SandboxOptions {
  /// Wall-clock limit in seconds; at it the sandbox's processes are killed (SIGKILL) and timed_out is set.
  double timeout_seconds = 10.0;
  /// RLIMIT_CPU of each process, seconds of CPU time (SIGKILL beyond); 0: the timeout rounded up, plus one.
  int cpu_seconds = 0;
  /// RLIMIT_AS of each process in MiB (virtual address space, not resident memory); 0: no limit.
  int64_t memory_mb = 1024;
  /// RLIMIT_FSIZE in MiB: the largest file a process may write (EFBIG, or SIGXFSZ unless ignored, beyond); 0: no
  /// limit.
  int64_t file_size_mb = 16;
  /// RLIMIT_NPROC: processes and threads the program's user may have at once (in a user namespace, the sandbox's
  /// own; otherwise every process of that uid on the machine counts); 0: no limit.
  int max_processes = 64;
  /// Bytes kept of stdout and of stderr each; the rest is read and dropped.
  std::size_t max_output_bytes = 64 * 1024;
  /// Directory in which the working directory is created; empty: the system temp directory.
  std::string temp_parent;
  /// true: an isolation step the kernel refuses is an error naming it; false: the program runs with the isolation
  /// that remains and SandboxResult::isolation lists what was missing.
  bool require_isolation = true;
  /// The program's whole environment ("NAME=value"); HOME and TMPDIR are set to the working directory unless given.
  /// argv[0] without a '/' is looked up in this PATH.
  std::vector<std::string> environment = {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"};
  /// When the caller is root: the uid and gid the program runs as. Not 0: RLIMIT_NPROC does not apply to root, and
  /// root could leave the read-only tree with chroot(2).
  uint32_t run_as_uid = 65534;
  uint32_t run_as_gid = 65534;

  /// Throws grpo::InvalidArgument naming the first invalid field.
  void validate() const {
    const std::string where = "grpo::SandboxOptions: ";
    if (!(timeout_seconds > 0) || !std::isfinite(timeout_seconds) || timeout_seconds > 1e6) {
      throw InvalidArgument(where + "timeout_seconds must be in (0, 1e6], got " + std::to_string(timeout_seconds));
    }
    if (cpu_seconds < 0) throw InvalidArgument(where + "cpu_seconds must be >= 0, got " + std::to_string(cpu_seconds));
    if (memory_mb < 0 || memory_mb > (int64_t{1} << 40)) {
      throw InvalidArgument(where + "memory_mb must be in [0, 2^40], got " + std::to_string(memory_mb));
    }
    if (file_size_mb < 0 || file_size_mb > (int64_t{1} << 40)) {
      throw InvalidArgument(where + "file_size_mb must be in [0, 2^40], got " + std::to_string(file_size_mb));
    }
    if (max_processes < 0) {
      throw InvalidArgument(where + "max_processes must be >= 0, got " + std::to_string(max_processes));
    }
    if (run_as_uid == 0 || run_as_gid == 0) {
      throw InvalidArgument(where + "run_as_uid and run_as_gid must not be 0 (root), got " +
                            std::to_string(run_as_uid) + " and " + std::to_string(run_as_gid));
    }
    for (const auto& entry : environment) {
      if (entry.find('=') == std::string::npos || entry.front() == '=' || entry.find('\0') != std::string::npos) {
        throw InvalidArgument(where + "environment entries must be \"NAME=value\", got \"" + entry + "\"");
      }
    }
  }
};

/// A file created in the working directory before the program starts.
struct SandboxFile {
  /// File name: no '/', not "." or "..".
  std::string name;
  std::string content;
  /// Mode 0755 instead of 0644.
  bool executable = false;
};

/// What to run.
struct SandboxCommand {
  /// The program and its arguments; argv[0] without a '/' is looked up in the sandbox's PATH, relative paths are
  /// relative to the working directory.
  std::vector<std::string> argv;
  /// Fed to the program's standard input, which is then closed.
  std::string stdin_data;
  /// Files created in the working directory.
  std::vector<SandboxFile> files;
};

/// Which isolation a run had (each field true when it was in force).
struct SandboxIsolation {
  /// Ran in a user namespace (false where a root caller created the other namespaces directly).
  bool user_namespace = false;
  /// Empty network namespace: no network.
  bool network_namespace = false;
  /// Own PID namespace (and IPC namespace, created with it): every process the program started dies with it.
  bool pid_namespace = false;
  /// Writes outside the working directory refused; /tmp, /var/tmp, /run and /dev/shm hidden.
  bool read_only_filesystem = false;
  /// /proc shows only the sandbox's processes (or nothing).
  bool private_proc = false;
  /// What was refused, one line each ("mount_setattr(...) failed: ...").
  std::vector<std::string> missing;
};

/// The outcome of a sandboxed run.
struct SandboxResult {
  /// Exit status when the program exited, else -1.
  int exit_code = -1;
  /// The signal that ended the program (SIGKILL at the timeout or the CPU limit), else 0.
  int signal = 0;
  /// Killed at the wall-clock timeout.
  bool timed_out = false;
  /// Captured output, at most SandboxOptions::max_output_bytes each.
  std::string stdout_text;
  std::string stderr_text;
  /// More output was written than kept.
  bool stdout_truncated = false;
  bool stderr_truncated = false;
  /// Wall time from the start until the sandbox was gone and its output collected, seconds.
  double wall_seconds = 0.0;
  /// The isolation in force.
  SandboxIsolation isolation;

  /// Exited with status 0 before the timeout.
  bool succeeded() const { return !timed_out && signal == 0 && exit_code == 0; }
};

namespace detail {

// ---- kernel interfaces that older libc headers may lack ----------------------------------------------------------

#ifdef SYS_open_tree
inline constexpr long sys_open_tree = SYS_open_tree;
#else
inline constexpr long sys_open_tree = 428;
#endif
#ifdef SYS_move_mount
inline constexpr long sys_move_mount = SYS_move_mount;
#else
inline constexpr long sys_move_mount = 429;
#endif
#ifdef SYS_close_range
inline constexpr long sys_close_range = SYS_close_range;
#else
inline constexpr long sys_close_range = 436;
#endif
#ifdef SYS_mount_setattr
inline constexpr long sys_mount_setattr = SYS_mount_setattr;
#else
inline constexpr long sys_mount_setattr = 442;
#endif

inline constexpr unsigned sandbox_open_tree_clone = 1;          // OPEN_TREE_CLONE
inline constexpr unsigned sandbox_at_recursive = 0x8000;        // AT_RECURSIVE
inline constexpr unsigned sandbox_move_mount_f_empty_path = 4;  // MOVE_MOUNT_F_EMPTY_PATH
inline constexpr uint64_t sandbox_mount_attr_rdonly = 0x1;      // MOUNT_ATTR_RDONLY
inline constexpr uint64_t sandbox_mount_attr_nosuid = 0x2;      // MOUNT_ATTR_NOSUID
inline constexpr uint64_t sandbox_mount_attr_nodev = 0x4;       // MOUNT_ATTR_NODEV

// struct mount_attr of mount_setattr(2), version 0.
struct SandboxMountAttr {
  uint64_t attr_set = 0;
  uint64_t attr_clr = 0;
  uint64_t propagation = 0;
  uint64_t userns_fd = 0;
};

// struct linux_dirent64 of getdents64(2).
struct SandboxDirent64 {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[1];
};

// ---- the children's side: only async-signal-safe calls -----------------------------------------------------------

// The steps of the children's setup; sandbox_step_text() describes each.
enum class SandboxStep : int32_t {
  redirect_fds,
  close_fds,
  make_private,
  open_tree_workdir,
  open_tree_root,
  read_only_root,
  attach_root,
  enter_root,
  hide_dir,
  make_workdir_path,
  attach_workdir,
  read_only_hidden,
  mount_proc,
  hide_proc,
  chdir_workdir,
  start_program,
  setgroups,
  setgid,
  setuid,
  set_rlimit,
  no_new_privs,
  exec
};

enum class SandboxRecordKind : int32_t { failure = 1, degraded = 2, exited = 3 };

// What the children report to the parent, one write(2) each (atomic: smaller than PIPE_BUF).
struct SandboxRecord {
  SandboxRecordKind kind;
  SandboxStep step;
  int32_t value;  // an index (anchor, directory, rlimit, path prefix) or the wait status of the program
  int32_t error;  // errno
};

// The children's fds besides 0-2: the report pipe (CLOEXEC, so the program never holds it) and, in the init process
// until the parent's go, the start pipe. The parent makes every pipe fd >= sandbox_first_pipe_fd, so that moving
// them onto 0-4 never overwrites one.
inline constexpr int sandbox_report_fd = 3;
inline constexpr int sandbox_start_fd = 4;
inline constexpr int sandbox_first_pipe_fd = 5;

// Where the read-only tree is attached: "/", or in a chroot whose "/" is no mount point the first of the others
// that is one.
inline constexpr int sandbox_anchor_count = 4;
inline constexpr const char* sandbox_anchors[sandbox_anchor_count] = {"/", "/proc", "/dev", "/sys"};
inline constexpr int sandbox_hidden_dir_count = 4;
inline constexpr const char* sandbox_hidden_dirs[sandbox_hidden_dir_count] = {"/tmp", "/var/tmp", "/run", "/dev/shm"};
inline constexpr int sandbox_rlimit_count = 5;
inline constexpr int sandbox_rlimits[sandbox_rlimit_count] = {RLIMIT_CPU, RLIMIT_AS, RLIMIT_FSIZE, RLIMIT_NPROC,
                                                              RLIMIT_CORE};
inline constexpr const char* sandbox_rlimit_names[sandbox_rlimit_count] = {"RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_FSIZE",
                                                                           "RLIMIT_NPROC", "RLIMIT_CORE"};

// Everything the children need, prepared by the parent before clone(2).
struct SandboxChildContext {
  int stdin_read = -1;
  int stdout_write = -1;
  int stderr_write = -1;
  int report_write = -1;
  int start_read = -1;
  bool mount_namespace = false;  // set up the read-only tree and a new /proc
  bool require_isolation = true;
  bool drop_privileges = false;  // setgroups/setresgid/setresuid to uid, gid before exec
  uid_t uid = 0;
  gid_t gid = 0;
  rlim_t limits[sandbox_rlimit_count] = {};  // RLIM_INFINITY: leave as is
  const char* workdir = nullptr;
  const char* const* workdir_prefixes = nullptr;  // "/a", "/a/b", ... "/a/b/workdir"
  int workdir_prefix_count = 0;
  const char* exe = nullptr;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  char* program_stack_top = nullptr;
};

inline void sandbox_report(int fd, SandboxRecordKind kind, SandboxStep step, int value, int error) {
  const SandboxRecord record{kind, step, value, error};
  while (::write(fd, &record, sizeof record) < 0 && errno == EINTR) {
  }
}

[[noreturn]] inline void sandbox_fail(int fd, SandboxStep step, int value, int error) {
  sandbox_report(fd, SandboxRecordKind::failure, step, value, error);
  ::_exit(127);
}

// A refused isolation step: fatal when isolation is required, else reported and skipped.
inline void sandbox_refused(const SandboxChildContext& c, SandboxStep step, int value, int error) {
  if (c.require_isolation) sandbox_fail(sandbox_report_fd, step, value, error);
  sandbox_report(sandbox_report_fd, SandboxRecordKind::degraded, step, value, error);
}

// Closes every fd >= first: close_range(2), else each fd listed in /proc/self/fd (getdents64, no allocation).
inline int sandbox_close_fds_from(int first) {
  if (::syscall(sys_close_range, static_cast<unsigned>(first), ~0U, 0U) == 0) return 0;
  const int dir = ::open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return errno;
  alignas(SandboxDirent64) char buffer[4096];
  for (;;) {
    const long n = ::syscall(SYS_getdents64, dir, buffer, sizeof buffer);
    if (n <= 0) break;
    for (long at = 0; at < n;) {
      const auto* entry = reinterpret_cast<const SandboxDirent64*>(buffer + at);
      at += entry->d_reclen;
      int fd = 0;
      bool number = entry->d_name[0] != '\0';
      for (const char* p = entry->d_name; *p != '\0'; ++p) {
        if (*p < '0' || *p > '9') number = false;
        fd = fd * 10 + (*p - '0');
      }
      if (number && fd >= first && fd != dir) ::close(fd);
    }
  }
  ::close(dir);
  return 0;
}

inline int sandbox_mount_setattr(int dirfd, const char* path, unsigned flags, const SandboxMountAttr& attr) {
  return static_cast<int>(::syscall(sys_mount_setattr, dirfd, path, flags, &attr, sizeof attr));
}

// The read-only tree as the new root, the working directory writable in it, hidden scratch directories, a /proc of
// the PID namespace. The tree is cloned (open_tree) rather than remounted in place because in a chroot "/" may be no
// mount point; the clone is attached onto a mount made private first (a shared one would propagate the attachment
// to the caller's namespace) and entered with chroot.
inline void sandbox_isolate_filesystem(const SandboxChildContext& c) {
  int anchor = 0;
  while (::mount(nullptr, sandbox_anchors[anchor], nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    const bool no_mount_point = errno == EINVAL || errno == ENOENT;
    if (!no_mount_point || anchor + 1 == sandbox_anchor_count) {
      return sandbox_refused(c, SandboxStep::make_private, anchor, errno);
    }
    ++anchor;
  }
  const int work = static_cast<int>(
      ::syscall(sys_open_tree, AT_FDCWD, c.workdir, sandbox_open_tree_clone | static_cast<unsigned>(O_CLOEXEC)));
  if (work < 0) return sandbox_refused(c, SandboxStep::open_tree_workdir, 0, errno);
  const int tree = static_cast<int>(::syscall(
      sys_open_tree, AT_FDCWD, "/", sandbox_open_tree_clone | sandbox_at_recursive | static_cast<unsigned>(O_CLOEXEC)));
  if (tree < 0) {
    const int error = errno;
    ::close(work);
    return sandbox_refused(c, SandboxStep::open_tree_root, 0, error);
  }
  SandboxMountAttr read_only;
  read_only.attr_set = sandbox_mount_attr_rdonly | sandbox_mount_attr_nosuid;
  read_only.propagation = MS_PRIVATE;
  SandboxStep failed = SandboxStep::read_only_root;
  bool entered = sandbox_mount_setattr(tree, "", AT_EMPTY_PATH | sandbox_at_recursive, read_only) == 0;
  if (entered) {
    failed = SandboxStep::attach_root;
    entered =
        ::syscall(sys_move_mount, tree, "", AT_FDCWD, sandbox_anchors[anchor], sandbox_move_mount_f_empty_path) == 0;
  }
  if (entered) {
    failed = SandboxStep::enter_root;
    entered = ::fchdir(tree) == 0 && ::chroot(".") == 0;
  }
  const int error = errno;
  ::close(tree);
  if (!entered) {
    ::close(work);
    return sandbox_refused(c, failed, anchor, error);
  }
  // From here the root is read-only: a failed step no longer leaves the caller's tree writable.
  bool hidden[sandbox_hidden_dir_count] = {};
  for (int i = 0; i < sandbox_hidden_dir_count; ++i) {
    struct stat st {};
    if (::lstat(sandbox_hidden_dirs[i], &st) != 0 || !S_ISDIR(st.st_mode)) continue;
    if (::mount("tmpfs", sandbox_hidden_dirs[i], "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=64k,mode=755") != 0) {
      sandbox_refused(c, SandboxStep::hide_dir, i, errno);
      continue;
    }
    hidden[i] = true;
  }
  // The working directory's path, recreated where a tmpfs now hides it (the directories of the tree exist already).
  for (int i = 0; i < c.workdir_prefix_count; ++i) {
    if (::mkdir(c.workdir_prefixes[i], 0755) != 0 && errno != EEXIST) {
      sandbox_fail(sandbox_report_fd, SandboxStep::make_workdir_path, i, errno);
    }
  }
  SandboxMountAttr writable;
  writable.attr_set = sandbox_mount_attr_nosuid | sandbox_mount_attr_nodev;
  writable.propagation = MS_PRIVATE;
  if (sandbox_mount_setattr(work, "", AT_EMPTY_PATH, writable) != 0 ||
      ::syscall(sys_move_mount, work, "", AT_FDCWD, c.workdir, sandbox_move_mount_f_empty_path) != 0) {
    sandbox_fail(sandbox_report_fd, SandboxStep::attach_workdir, 0, errno);
  }
  ::close(work);
  SandboxMountAttr read_only_flat;
  read_only_flat.attr_set = sandbox_mount_attr_rdonly;
  for (int i = 0; i < sandbox_hidden_dir_count; ++i) {
    if (hidden[i] && sandbox_mount_setattr(AT_FDCWD, sandbox_hidden_dirs[i], 0, read_only_flat) != 0) {
      sandbox_refused(c, SandboxStep::read_only_hidden, i, errno);
    }
  }
  const unsigned long proc_flags = MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY;
  if (::mount("proc", "/proc", "proc", proc_flags, nullptr) != 0) {
    const int proc_error = errno;
    if (::mount("tmpfs", "/proc", "tmpfs", proc_flags, "size=4k,mode=555") != 0) {
      sandbox_refused(c, SandboxStep::hide_proc, 0, errno);
    } else {
      sandbox_report(sandbox_report_fd, SandboxRecordKind::degraded, SandboxStep::mount_proc, 0, proc_error);
    }
  }
}

// The program's process: credentials, limits, exec.
inline int sandbox_program_main(void* arg) {
  const auto& c = *static_cast<const SandboxChildContext*>(arg);
  const int report = sandbox_report_fd;
  if (c.drop_privileges) {
    // Raw system calls: glibc's wrappers would signal the caller's other threads, which do not exist here.
    if (::syscall(SYS_setgroups, 0, nullptr) != 0) sandbox_fail(report, SandboxStep::setgroups, 0, errno);
    if (::syscall(SYS_setresgid, c.gid, c.gid, c.gid) != 0) sandbox_fail(report, SandboxStep::setgid, 0, errno);
    if (::syscall(SYS_setresuid, c.uid, c.uid, c.uid) != 0) sandbox_fail(report, SandboxStep::setuid, 0, errno);
  }
  for (int i = 0; i < sandbox_rlimit_count; ++i) {
    if (c.limits[i] == RLIM_INFINITY) continue;
    const rlimit limit{c.limits[i], c.limits[i]};  // soft = hard: RLIMIT_CPU then ends in SIGKILL
    if (::setrlimit(sandbox_rlimits[i], &limit) != 0) sandbox_fail(report, SandboxStep::set_rlimit, i, errno);
  }
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) sandbox_fail(report, SandboxStep::no_new_privs, 0, errno);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);  // after the uid change, which clears it
  ::execve(c.exe, c.argv, c.envp);
  sandbox_fail(report, SandboxStep::exec, 0, errno);
}

// The sandbox's first process (the init of its PID namespace): arranges its fds, waits for the parent's go (after
// the uid and gid maps are written), sets up the file system, starts the program and reports how it ended.
inline int sandbox_init_main(void* arg) {
  auto& c = *static_cast<SandboxChildContext*>(arg);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &default_action, nullptr);  // the caller's are not ours
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);  // the parent blocked every signal around clone()
  ::setsid();
  // Before waiting: the fds of the caller (and of its concurrent runs) are closed at once, and the start pipe's
  // write end is the parent's only, so that its death ends the wait.
  if (::dup2(c.stdin_read, 0) < 0 || ::dup2(c.stdout_write, 1) < 0 || ::dup2(c.stderr_write, 2) < 0 ||
      ::dup3(c.report_write, sandbox_report_fd, O_CLOEXEC) < 0 ||
      ::dup3(c.start_read, sandbox_start_fd, O_CLOEXEC) < 0) {
    sandbox_fail(c.report_write, SandboxStep::redirect_fds, 0, errno);
  }
  if (const int error = sandbox_close_fds_from(sandbox_start_fd + 1); error != 0) {
    sandbox_fail(sandbox_report_fd, SandboxStep::close_fds, 0, error);
  }
  char go = 0;
  while (::read(sandbox_start_fd, &go, 1) < 0 && errno == EINTR) {
  }
  if (go != 'g') ::_exit(126);  // the parent gave up
  ::close(sandbox_start_fd);
  if (c.mount_namespace) sandbox_isolate_filesystem(c);
  if (::chdir(c.workdir) != 0) sandbox_fail(sandbox_report_fd, SandboxStep::chdir_workdir, 0, errno);
  const pid_t program = ::clone(&sandbox_program_main, c.program_stack_top, SIGCHLD, &c);
  if (program < 0) sandbox_fail(sandbox_report_fd, SandboxStep::start_program, 0, errno);
  ::close(0), ::close(1), ::close(2);  // the parent sees end-of-file when the program's processes are gone
  // As init, also reap orphans; when the program ends, report and exit: the kernel kills what is left.
  for (;;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, __WALL);
    if (pid == program) {
      sandbox_report(sandbox_report_fd, SandboxRecordKind::exited, SandboxStep::exec, status, 0);
      ::_exit(0);
    }
    if (pid < 0 && errno != EINTR) ::_exit(125);
  }
}

// ---- the parent's side ---------------------------------------------------------------------------------------------

inline std::string sandbox_errno_text(int error) { return std::error_code(error, std::generic_category()).message(); }

// "mount_setattr(...) failed: Operation not permitted (hint)" for a record.
inline std::string sandbox_step_text(const SandboxRecord& r, const std::string& workdir, const std::string& exe,
                                     const std::vector<std::string>& prefixes, uid_t uid, gid_t gid) {
  const auto name = [&](const char* const* names, int count) {
    return r.value >= 0 && r.value < count ? std::string(names[r.value]) : std::string("?");
  };
  std::string what;
  std::string hint;
  switch (r.step) {
    case SandboxStep::redirect_fds:
      what = "dup2(pipes onto fds 0-4)";
      break;
    case SandboxStep::close_fds:
      what = "closing inherited fds (close_range, /proc/self/fd)";
      break;
    case SandboxStep::make_private:
      what = "mount(\"" + name(sandbox_anchors, sandbox_anchor_count) + "\", MS_REC|MS_PRIVATE)";
      if (r.value == sandbox_anchor_count - 1 && (r.error == EINVAL || r.error == ENOENT)) {
        hint = "\"/\" is no mount point (a chroot?), and none of /proc, /dev, /sys is one";
      }
      break;
    case SandboxStep::open_tree_workdir:
      what = "open_tree(\"" + workdir + "\", OPEN_TREE_CLONE)";
      break;
    case SandboxStep::open_tree_root:
      what = "open_tree(\"/\", OPEN_TREE_CLONE|AT_RECURSIVE)";
      break;
    case SandboxStep::read_only_root:
      what = "mount_setattr(\"/\", AT_RECURSIVE, MOUNT_ATTR_RDONLY)";
      if (r.error == ENOSYS) hint = "kernel older than 5.12";
      break;
    case SandboxStep::attach_root:
      what = "move_mount(read-only tree, \"" + name(sandbox_anchors, sandbox_anchor_count) + "\")";
      break;
    case SandboxStep::enter_root:
      what = "chroot(read-only tree)";
      break;
    case SandboxStep::hide_dir:
      what = "mount(tmpfs, \"" + name(sandbox_hidden_dirs, sandbox_hidden_dir_count) + "\")";
      break;
    case SandboxStep::make_workdir_path:
      what =
          "mkdir(\"" + (r.value >= 0 && r.value < static_cast<int>(prefixes.size()) ? prefixes[r.value] : "?") + "\")";
      break;
    case SandboxStep::attach_workdir:
      what = "move_mount(\"" + workdir + "\")";
      break;
    case SandboxStep::read_only_hidden:
      what = "mount_setattr(\"" + name(sandbox_hidden_dirs, sandbox_hidden_dir_count) + "\", MOUNT_ATTR_RDONLY)";
      break;
    case SandboxStep::mount_proc:
      what = "mount(proc, \"/proc\") (hidden behind an empty tmpfs instead)";
      break;
    case SandboxStep::hide_proc:
      what = "mount(proc, \"/proc\") and mount(tmpfs, \"/proc\")";
      break;
    case SandboxStep::chdir_workdir:
      what = "chdir(\"" + workdir + "\")";
      break;
    case SandboxStep::start_program:
      what = "clone(program)";
      break;
    case SandboxStep::setgroups:
      what = "setgroups(0)";
      break;
    case SandboxStep::setgid:
      what = "setresgid(" + std::to_string(gid) + ")";
      break;
    case SandboxStep::setuid:
      what = "setresuid(" + std::to_string(uid) + ")";
      break;
    case SandboxStep::set_rlimit:
      what = "setrlimit(" + name(sandbox_rlimit_names, sandbox_rlimit_count) + ")";
      break;
    case SandboxStep::no_new_privs:
      what = "prctl(PR_SET_NO_NEW_PRIVS)";
      break;
    case SandboxStep::exec:
      what = "execve(\"" + exe + "\")";
      if (r.error == EACCES || r.error == ENOENT) {
        hint = "can uid " + std::to_string(uid) + " read and execute it, and is it inside the sandbox's tree?";
      }
      break;
  }
  return what + " failed: " + sandbox_errno_text(r.error) + (hint.empty() ? "" : " (" + hint + ")");
}

inline void sandbox_close(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// A pipe whose ends are CLOEXEC and >= sandbox_first_pipe_fd; the ends still open are closed with it.
struct SandboxPipe {
  int read_end = -1;
  int write_end = -1;

  SandboxPipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
      throw RuntimeError("grpo::run_sandboxed: pipe2 failed: " + sandbox_errno_text(errno));
    }
    read_end = fds[0];
    write_end = fds[1];
    for (int* fd : {&read_end, &write_end}) {
      if (*fd >= sandbox_first_pipe_fd) continue;
      const int moved = ::fcntl(*fd, F_DUPFD_CLOEXEC, sandbox_first_pipe_fd);
      const int error = errno;
      sandbox_close(*fd);
      *fd = moved;
      if (moved < 0) {
        sandbox_close(read_end);
        sandbox_close(write_end);
        throw RuntimeError("grpo::run_sandboxed: fcntl(F_DUPFD_CLOEXEC) failed: " + sandbox_errno_text(error));
      }
    }
  }
  SandboxPipe(const SandboxPipe&) = delete;
  SandboxPipe& operator=(const SandboxPipe&) = delete;
  ~SandboxPipe() {
    sandbox_close(read_end);
    sandbox_close(write_end);
  }
};

// The working directory: created by mkdtemp, removed with everything in it (also what the program made unreadable).
class SandboxWorkdir {
 public:
  SandboxWorkdir(const std::string& parent, bool chown_to_program, uid_t uid, gid_t gid) {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::path base = parent.empty() ? fs::temp_directory_path(ec) : fs::path(parent);
    if (ec) base = "/tmp";
    const fs::path canonical_base = fs::canonical(base, ec);
    if (ec) {
      throw InvalidArgument("grpo::run_sandboxed: the sandbox's temp directory " + base.string() +
                            " is not usable: " + ec.message());
    }
    std::string pattern = (canonical_base / "grpo_sandbox_XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw RuntimeError("grpo::run_sandboxed: mkdtemp(" + pattern + ") failed: " + sandbox_errno_text(errno));
    }
    path_ = pattern;
    if (chown_to_program && ::chown(path_.c_str(), uid, gid) != 0) {
      const int error = errno;
      remove();
      throw RuntimeError("grpo::run_sandboxed: chown(" + pattern + ", " + std::to_string(uid) +
                         ") failed: " + sandbox_errno_text(error));
    }
  }
  SandboxWorkdir(const SandboxWorkdir&) = delete;
  SandboxWorkdir& operator=(const SandboxWorkdir&) = delete;
  ~SandboxWorkdir() { remove(); }

  const std::string& path() const { return path_; }

  // Removes the directory; returns an error message, empty on success (or when already removed).
  std::string remove() noexcept {
    namespace fs = std::filesystem;
    if (path_.empty()) return {};
    std::error_code ec;
    fs::remove_all(path_, ec);
    if (ec) {  // the program may have taken the permissions away from its own directories
      make_removable(path_);
      ec.clear();
      fs::remove_all(path_, ec);
    }
    if (ec) return ec.message();
    path_.clear();
    return {};
  }

 private:
  static void make_removable(const std::filesystem::path& dir) noexcept {
    namespace fs = std::filesystem;
    std::error_code ec;
    fs::permissions(dir, fs::perms::owner_all, fs::perm_options::add, ec);
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      std::error_code status_ec;
      if (fs::is_directory(it->symlink_status(status_ec))) make_removable(it->path());
    }
  }

  std::string path_;
};

// argv[0] resolved in the sandbox's PATH (the program never sees the caller's PATH).
inline std::string sandbox_resolve(const std::string& program, const std::vector<std::string>& environment) {
  if (program.find('/') != std::string::npos) return program;
  std::string path = "/usr/local/bin:/usr/bin:/bin";
  for (const auto& entry : environment) {
    if (entry.rfind("PATH=", 0) == 0) path = entry.substr(5);
  }
  std::size_t start = 0;
  while (start <= path.size()) {
    const auto end = std::min(path.find(':', start), path.size());
    const std::string dir = path.substr(start, end - start);
    if (!dir.empty() && dir.front() == '/') {
      const std::string candidate = dir + "/" + program;
      struct stat st {};
      if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111) != 0) return candidate;
    }
    start = end + 1;
  }
  throw InvalidArgument("grpo::run_sandboxed: \"" + program + "\" is not in the sandbox's PATH (" + path +
                        "); install it or give its absolute path");
}

// Creates the command's files in the working directory, owned by the program's user.
inline void sandbox_write_files(const std::string& workdir, const std::vector<SandboxFile>& files,
                                bool chown_to_program, uid_t uid, gid_t gid) {
  for (const auto& f : files) {
    const std::string path = workdir + "/" + f.name;
    const int fd =
        ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, f.executable ? 0755 : 0644);
    int error = fd < 0 ? errno : 0;
    for (std::size_t done = 0; error == 0 && done < f.content.size();) {
      const ssize_t n = ::write(fd, f.content.data() + done, f.content.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) error = n < 0 ? errno : EIO;
      if (n > 0) done += static_cast<std::size_t>(n);
    }
    if (error == 0 && chown_to_program && ::fchown(fd, uid, gid) != 0) error = errno;
    if (fd >= 0) ::close(fd);
    if (error != 0)
      throw RuntimeError("grpo::run_sandboxed: writing " + path + " failed: " + sandbox_errno_text(error));
  }
}

inline void sandbox_write_proc_file(pid_t pid, const char* name, const std::string& text) {
  const std::string path = "/proc/" + std::to_string(pid) + "/" + name;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  int error = fd < 0 ? errno : 0;
  if (fd >= 0) {
    if (::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) error = errno ? errno : EIO;
    ::close(fd);
  }
  if (error != 0) {
    throw RuntimeError("grpo::run_sandboxed: writing \"" + text.substr(0, text.find('\n')) + "\" to " + path +
                       " failed: " + sandbox_errno_text(error));
  }
}

// The uid and gid maps of the sandbox's user namespace: root maps itself (the init process sets up the mounts as
// root) and the program's ids; an unprivileged caller may map only its own ids, after denying setgroups.
inline void sandbox_write_id_maps(pid_t pid, bool root, uid_t uid, gid_t gid) {
  const auto map = [root](uint32_t id) {
    return std::string(root ? "0 0 1\n" : "") + std::to_string(id) + " " + std::to_string(id) + " 1\n";
  };
  if (!root) sandbox_write_proc_file(pid, "setgroups", "deny");
  sandbox_write_proc_file(pid, "uid_map", map(uid));
  sandbox_write_proc_file(pid, "gid_map", map(gid));
}

inline const char* sandbox_clone_hint(int error) {
  switch (error) {
    case EPERM:
      return "user namespaces disabled or restricted by a security module, or the caller is in a chroot?";
    case ENOSPC:
      return "user.max_user_namespaces or another namespace limit reached?";
    case EINVAL:
      return "kernel without namespace support?";
    case EUSERS:
      return "too many nested user namespaces?";
    default:
      return "";
  }
}

// Starts the sandbox's init process in every namespace the kernel grants (see the top of this file) and records
// them in `isolation`.
inline pid_t sandbox_clone(SandboxChildContext& context, char* stack_top, bool root, bool require_isolation,
                           SandboxIsolation& isolation) {
  const auto try_clone = [&](int flags) {
    context.mount_namespace = (flags & CLONE_NEWNS) != 0;
    sigset_t all, old;
    ::sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &old);  // no handler of the caller may run in the child
    const pid_t pid = ::clone(&sandbox_init_main, stack_top, flags | SIGCHLD, &context);
    const int error = errno;
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    errno = error;
    return pid;
  };
  constexpr int namespaces = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC;
  pid_t pid = try_clone(CLONE_NEWUSER | namespaces);
  if (pid >= 0) {
    isolation.user_namespace = isolation.network_namespace = isolation.pid_namespace = true;
    return pid;
  }
  std::string refused =
      "clone(CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWNET|CLONE_NEWPID|CLONE_NEWIPC) failed: " + sandbox_errno_text(errno) +
      " (" + sandbox_clone_hint(errno) + ")";
  if (root) {
    pid = try_clone(namespaces);
    if (pid >= 0) {
      isolation.network_namespace = isolation.pid_namespace = true;
      return pid;
    }
    refused += "; as root without CLONE_NEWUSER: " + sandbox_errno_text(errno);
  }
  if (require_isolation) throw RuntimeError("grpo::run_sandboxed: " + refused);
  isolation.missing.push_back("namespaces (network, PID, IPC, mount): " + refused);
  pid = try_clone(0);
  if (pid < 0) throw RuntimeError("grpo::run_sandboxed: clone() failed: " + sandbox_errno_text(errno));
  return pid;
}

// The sandbox's init process; it and every process of its process group (or PID namespace) are killed and it is
// reaped by end(), at the latest when this goes out of scope.
class SandboxProcess {
 public:
  explicit SandboxProcess(pid_t pid) : pid_(pid) {}
  SandboxProcess(const SandboxProcess&) = delete;
  SandboxProcess& operator=(const SandboxProcess&) = delete;
  ~SandboxProcess() { end(); }

  pid_t pid() const { return pid_; }
  void end() {
    if (reaped_) return;
    ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
    while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
  }

 private:
  pid_t pid_;
  bool reaped_ = false;
};

// Writes to the program's stdin without letting a closed pipe raise SIGPIPE in the caller: the signal is blocked in
// this thread and, when the write raised it, consumed.
inline ssize_t sandbox_write_no_sigpipe(int fd, const char* data, std::size_t size) {
  sigset_t pipe_set, old_set, pending;
  ::sigemptyset(&pipe_set);
  ::sigaddset(&pipe_set, SIGPIPE);
  ::pthread_sigmask(SIG_BLOCK, &pipe_set, &old_set);
  ::sigpending(&pending);
  const bool was_pending = ::sigismember(&pending, SIGPIPE) == 1;
  const ssize_t n = ::write(fd, data, size);
  const int error = errno;
  if (n < 0 && error == EPIPE && !was_pending) {
    const timespec zero{0, 0};
    ::sigtimedwait(&pipe_set, nullptr, &zero);
  }
  ::pthread_sigmask(SIG_SETMASK, &old_set, nullptr);
  errno = error;
  return n;
}

// The pipes between the caller and the sandbox, from the caller's side.
struct SandboxStreams {
  int& stdin_write;
  int& stdout_read;
  int& stderr_read;
  int& report_read;
};

// Feeds stdin and collects stdout, stderr (capped) and the children's records until the sandbox is gone, killing it
// at the deadline; true when it was killed there.
inline bool sandbox_communicate(SandboxProcess& sandbox, SandboxStreams streams, const std::string& input,
                                std::chrono::steady_clock::time_point deadline, std::size_t max_output,
                                SandboxResult& result, std::string& records) {
  using clock = std::chrono::steady_clock;
  const auto grace = std::chrono::milliseconds(500);  // for output of processes outside a PID namespace
  std::optional<clock::time_point> ended;             // when the init process exited or was killed
  bool killed = false;
  const auto end = [&] {
    sandbox.end();
    ended = clock::now();
  };
  std::size_t written = 0;
  if (input.empty()) {
    sandbox_close(streams.stdin_write);
  } else {
    ::fcntl(streams.stdin_write, F_SETFL, ::fcntl(streams.stdin_write, F_GETFL) | O_NONBLOCK);
  }
  for (;;) {
    if (!ended && clock::now() >= deadline) {
      killed = true;
      end();
    }
    const bool drained = streams.stdout_read < 0 && streams.stderr_read < 0 && streams.report_read < 0;
    if (ended && (drained || clock::now() - *ended > grace)) break;
    pollfd polls[4];
    int* fds[4];
    int count = 0;
    for (int* fd : {&streams.stdin_write, &streams.stdout_read, &streams.stderr_read, &streams.report_read}) {
      if (*fd < 0) continue;
      polls[count] = pollfd{*fd, static_cast<short>(fd == &streams.stdin_write ? POLLOUT : POLLIN), 0};
      fds[count++] = fd;
    }
    const auto limit = ended ? *ended + grace : deadline;
    const auto wait_ms = std::chrono::duration_cast<std::chrono::milliseconds>(limit - clock::now()).count() + 1;
    const int ready = ::poll(polls, static_cast<nfds_t>(count), static_cast<int>(std::max<int64_t>(0, wait_ms)));
    if (ready < 0 && errno != EINTR) {
      throw RuntimeError("grpo::run_sandboxed: poll failed: " + sandbox_errno_text(errno));
    }
    for (int k = 0; ready > 0 && k < count; ++k) {
      if (polls[k].revents == 0) continue;
      int& fd = *fds[k];
      if (&fd == &streams.stdin_write) {
        const ssize_t n = sandbox_write_no_sigpipe(fd, input.data() + written, input.size() - written);
        if (n > 0) written += static_cast<std::size_t>(n);
        if ((n < 0 && errno != EAGAIN && errno != EINTR) || written == input.size()) sandbox_close(fd);
        continue;
      }
      char buffer[16384];
      const ssize_t n = ::read(fd, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        const bool init_exited = &fd == &streams.report_read;
        sandbox_close(fd);
        if (init_exited && !ended) end();  // nothing of the sandbox may outlive its init process
      } else if (&fd == &streams.report_read) {
        records.append(buffer, static_cast<std::size_t>(n));
      } else {
        std::string& text = &fd == &streams.stdout_read ? result.stdout_text : result.stderr_text;
        bool& truncated = &fd == &streams.stdout_read ? result.stdout_truncated : result.stderr_truncated;
        const std::size_t keep = std::min(static_cast<std::size_t>(n), max_output - text.size());
        text.append(buffer, keep);
        if (keep < static_cast<std::size_t>(n)) truncated = true;
      }
    }
  }
  sandbox.end();
  sandbox_close(streams.stdin_write);
  return killed;
}

}  // namespace detail

/// Runs `command` in a sandbox (see the top of this file). Throws grpo::InvalidArgument for bad options or a command
/// that is not found, and grpo::RuntimeError when an isolation step is refused (with require_isolation) or the child
/// could not be set up (e.g. execve failed), naming the step and errno. Safe to call from several threads at once.
inline SandboxResult run_sandboxed(const SandboxCommand& command, const SandboxOptions& options = {}) {
  using namespace detail;
  using clock = std::chrono::steady_clock;
  const std::string where = "grpo::run_sandboxed: ";
  options.validate();
  if (command.argv.empty() || command.argv[0].empty()) throw InvalidArgument(where + "argv is empty");
  for (const auto& a : command.argv) {
    if (a.find('\0') != std::string::npos) throw InvalidArgument(where + "an argument contains a NUL byte");
  }
  for (const auto& f : command.files) {
    if (f.name.empty() || f.name == "." || f.name == ".." || f.name.find('/') != std::string::npos ||
        f.name.find('\0') != std::string::npos) {
      throw InvalidArgument(where + "file names must be plain names (no '/'), got \"" + f.name + "\"");
    }
  }

  const bool root = ::geteuid() == 0;
  const uid_t uid = root ? options.run_as_uid : ::geteuid();
  const gid_t gid = root ? options.run_as_gid : ::getegid();
  const std::string exe = sandbox_resolve(command.argv[0], options.environment);
  SandboxWorkdir workdir(options.temp_parent, root, uid, gid);
  const std::string workdir_path = workdir.path();
  sandbox_write_files(workdir_path, command.files, root, uid, gid);

  // Everything the children use, prepared before clone().
  std::vector<std::string> prefixes;
  for (std::size_t slash = workdir_path.find('/', 1);; slash = workdir_path.find('/', slash + 1)) {
    prefixes.push_back(workdir_path.substr(0, slash));
    if (slash == std::string::npos) break;
  }
  std::vector<const char*> prefix_ptrs;
  for (const auto& p : prefixes) prefix_ptrs.push_back(p.c_str());
  std::vector<std::string> environment = options.environment;
  const auto has_variable = [&](const std::string& name) {
    return std::any_of(environment.begin(), environment.end(),
                       [&](const std::string& e) { return e.rfind(name + "=", 0) == 0; });
  };
  if (!has_variable("HOME")) environment.push_back("HOME=" + workdir_path);
  if (!has_variable("TMPDIR")) environment.push_back("TMPDIR=" + workdir_path);
  std::vector<std::string> argv = command.argv;
  std::vector<char*> argv_ptrs, envp_ptrs;
  for (auto& a : argv) argv_ptrs.push_back(a.data());
  argv_ptrs.push_back(nullptr);
  for (auto& e : environment) envp_ptrs.push_back(e.data());
  envp_ptrs.push_back(nullptr);
  constexpr std::size_t stack_size = 256 * 1024;  // the init's and the program's, used until execve
  std::unique_ptr<char[]> stacks(new char[2 * stack_size]);
  const auto stack_top = [&](std::size_t i) {
    const auto top = reinterpret_cast<std::uintptr_t>(stacks.get() + (i + 1) * stack_size);
    return reinterpret_cast<char*>(top & ~std::uintptr_t{15});
  };

  SandboxPipe stdin_pipe, stdout_pipe, stderr_pipe, report_pipe, start_pipe;
  SandboxChildContext context;
  context.stdin_read = stdin_pipe.read_end;
  context.stdout_write = stdout_pipe.write_end;
  context.stderr_write = stderr_pipe.write_end;
  context.report_write = report_pipe.write_end;
  context.start_read = start_pipe.read_end;
  context.require_isolation = options.require_isolation;
  context.drop_privileges = root;
  context.uid = uid;
  context.gid = gid;
  const int cpu_seconds =
      options.cpu_seconds > 0 ? options.cpu_seconds : static_cast<int>(std::ceil(options.timeout_seconds)) + 1;
  context.limits[0] = static_cast<rlim_t>(cpu_seconds);
  context.limits[1] = options.memory_mb > 0 ? static_cast<rlim_t>(options.memory_mb) << 20 : RLIM_INFINITY;
  context.limits[2] = options.file_size_mb > 0 ? static_cast<rlim_t>(options.file_size_mb) << 20 : RLIM_INFINITY;
  context.limits[3] = options.max_processes > 0 ? static_cast<rlim_t>(options.max_processes) : RLIM_INFINITY;
  context.limits[4] = 0;
  context.workdir = workdir_path.c_str();
  context.workdir_prefixes = prefix_ptrs.data();
  context.workdir_prefix_count = static_cast<int>(prefix_ptrs.size());
  context.exe = exe.c_str();
  context.argv = argv_ptrs.data();
  context.envp = envp_ptrs.data();
  context.program_stack_top = stack_top(1);

  SandboxResult result;
  SandboxIsolation& isolation = result.isolation;
  const auto start = clock::now();
  // Declared after the working directory: on every way out, the sandbox is killed and reaped before it is removed.
  SandboxProcess sandbox(sandbox_clone(context, stack_top(0), root, options.require_isolation, isolation));
  isolation.read_only_filesystem = isolation.private_proc = context.mount_namespace;
  for (int* child_end : {&stdin_pipe.read_end, &stdout_pipe.write_end, &stderr_pipe.write_end, &report_pipe.write_end,
                         &start_pipe.read_end}) {
    sandbox_close(*child_end);
  }
  if (isolation.user_namespace) sandbox_write_id_maps(sandbox.pid(), root, uid, gid);
  if (::write(start_pipe.write_end, "g", 1) != 1) {
    throw RuntimeError(where + "starting the sandbox failed: " + sandbox_errno_text(errno));
  }
  sandbox_close(start_pipe.write_end);

  std::string record_bytes;
  const auto deadline =
      start + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(options.timeout_seconds));
  const bool killed = sandbox_communicate(
      sandbox, {stdin_pipe.write_end, stdout_pipe.read_end, stderr_pipe.read_end, report_pipe.read_end},
      command.stdin_data, deadline, options.max_output_bytes, result, record_bytes);
  result.wall_seconds = std::chrono::duration<double>(clock::now() - start).count();
  const std::string removal_error = workdir.remove();

  bool exited = false;
  std::string failure;
  for (std::size_t at = 0; at + sizeof(SandboxRecord) <= record_bytes.size(); at += sizeof(SandboxRecord)) {
    SandboxRecord r;
    std::memcpy(&r, record_bytes.data() + at, sizeof r);
    if (r.kind == SandboxRecordKind::exited) {
      exited = true;
      if (WIFEXITED(r.value)) result.exit_code = WEXITSTATUS(r.value);
      if (WIFSIGNALED(r.value)) result.signal = WTERMSIG(r.value);
      continue;
    }
    const std::string text = sandbox_step_text(r, workdir_path, exe, prefixes, uid, gid);
    if (r.kind == SandboxRecordKind::failure) {
      if (failure.empty()) failure = text;
      continue;
    }
    switch (r.step) {
      case SandboxStep::hide_dir:
        break;  // still read-only, only not empty
      case SandboxStep::mount_proc:
        break;  // hidden behind an empty tmpfs instead
      case SandboxStep::hide_proc:
        isolation.private_proc = false;
        break;
      default:
        isolation.read_only_filesystem = isolation.private_proc = false;
        break;
    }
    isolation.missing.push_back(text);
  }
  if (!failure.empty()) throw RuntimeError(where + failure);
  if (!removal_error.empty()) {
    throw RuntimeError(where + "could not remove the working directory " + workdir_path + ": " + removal_error);
  }
  // A program that ended just before the deadline, its record not yet read, did not time out.
  result.timed_out = killed && !exited;
  if (result.timed_out) result.signal = SIGKILL;
  if (!exited && !killed) {
    throw RuntimeError(where + "the sandbox's init process ended without reporting the program's status");
  }
  return result;
}

}  // namespace grpo
