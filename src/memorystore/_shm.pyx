# cython: language_level=3, freethreading_compatible=True, embedsignature=True
# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The shared-memory core: ``ShmCache``, str keys to str/bytes values in a named segment.

Every process of a host that opens the same name maps one file in /dev/shm;
the slot, index, recency and expiry algorithms are ``_slots.pxd``'s, over
arrays inside the segment (offsets only, never pointers, in the segment)::

    header      magic, layout version, parameters, owner uid, 128-bit SipHash
                seed, offsets of everything below
    shard       robust process-shared mutex, owner pid, block free list,
                recoveries, stale, SlotsState (with the operation counters)
    slots[]     capacity x 32-byte Slot (the pxd's): deadline, hash32, stamp,
                recency and expiry links
    table[]     {slot, hash32} buckets, 1.75 x capacity
    heap        heap_slot[], heap_key[]: capacity + 1 each, never grown
    records[]   one uint64 a slot: the entry, 0 when the slot is free
                  bits 0..31  first block + 1
                  bits 32..59 value length in bytes
                  bits 60..63 kind: 0 bytes, 1 ASCII str, 2 UTF-8 str
    block_next[] int32 per block: the next block of a chain or of the free list
    marks[]     one bit per block (recovery and the invariant check)
    blocks      the arena: 64-byte blocks; an entry is a chain of them holding
                  deadline (double) | key length (uint32) | 0 | key | value

Crash safety.  The truth is the records (with the chains they point to), and
for a live slot its stamp; everything else is derived.  A write fills fresh
blocks, then switches the record with one aligned 64-bit store (the commit
point: value and deadline change together), then frees the old blocks.  A
``touch`` stores the new deadline in the chain with one aligned store.  If a
process dies holding the mutex, the next locker gets EOWNERDEAD and rebuilds
every derived structure from the records (``_recover``): an entry reads as its
old or its new value, never a mix, and nothing else is lost.

Only memcpy of bytes happens under the mutex: keys and values are encoded
before it and decoded after it (ASCII str values are copied straight into the
new str object).  The GIL is released while waiting for the mutex.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.buffer cimport PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from libc.math cimport INFINITY, NAN
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy, memset

from memorystore._slots cimport (
    NIL, POLICY_LRU, POLICY_PROTECT, SLOT_FREE, SLOT_READ,
    Bucket, Counters, Slot, SlotsState, SlotsView, clock_slack, default_clock,
    expiry_count, expiry_file, expiry_next, home_bucket, mru_next, slot_free, slot_read,
    slot_take, slot_written, slots_check, slots_rebuild, slots_reset, slots_victim, table_size_for,
)

import mmap
import os
import re
import stat
import sys
from datetime import timedelta

from memorystore._stats import SharedStats

cdef extern from "Python.h":
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    void* PyUnicode_DATA(object o)
    bint PyUnicode_IS_ASCII(object o)
    bint PyUnicode_Check(object o)
    bint PyBytes_Check(object o)
    const char* PyUnicode_AsUTF8AndSize(object o, Py_ssize_t* size) except NULL
    object PyUnicode_DecodeUTF8(const char* s, Py_ssize_t size, const char* errors)

cdef extern from *:
    """
    #include <errno.h>
    #include <stdint.h>
    #include <string.h>
    /* MEMORYSTORE_SHM_UNSUPPORTED forces the branch macOS and Windows compile, so that
       it is built and tested on Linux too (tests/test_platforms.py). */
    #if defined(__linux__) && !defined(MEMORYSTORE_SHM_UNSUPPORTED)
      #include <pthread.h>
      #include <signal.h>
      #include <time.h>
      #include <unistd.h>
      #define MS_SHM_SUPPORTED 1
      typedef pthread_mutex_t ms_lock_t;
    #else
      /* No robust process-shared mutex (macOS, Windows, ...): the module builds,
         and constructing a ShmCache raises RuntimeError. */
      #define MS_SHM_SUPPORTED 0
      typedef struct { char opaque[64]; } ms_lock_t;
    #endif
    #ifndef EOWNERDEAD
      #define EOWNERDEAD 130
    #endif
    #ifndef ENOTRECOVERABLE
      #define ENOTRECOVERABLE 131
    #endif
    #ifndef ETIMEDOUT
      #define ETIMEDOUT 110
    #endif
    #ifndef EBUSY
      #define EBUSY 16
    #endif

    /* -- the robust process-shared mutex ---------------------------------- */
    static int ms_lock_init(ms_lock_t *m) {
    #if MS_SHM_SUPPORTED
        pthread_mutexattr_t a;
        int rc = pthread_mutexattr_init(&a);
        if (rc) return rc;
        rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
        if (!rc) rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
        if (!rc) rc = pthread_mutex_init(m, &a);
        pthread_mutexattr_destroy(&a);
        return rc;
    #else
        (void)m; return ENOSYS;
    #endif
    }
    static int ms_lock_try(ms_lock_t *m) {
    #if MS_SHM_SUPPORTED
        return pthread_mutex_trylock(m);
    #else
        (void)m; return ENOSYS;
    #endif
    }
    /* Wait at most `seconds` (monotonic where glibc has pthread_mutex_clocklock). */
    static int ms_lock_wait(ms_lock_t *m, double seconds) {
    #if MS_SHM_SUPPORTED
        struct timespec ts;
        long long ns;
    #if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 30))
        clock_gettime(CLOCK_MONOTONIC, &ts);
    #else
        clock_gettime(CLOCK_REALTIME, &ts);
    #endif
        ns = (long long)ts.tv_nsec + (long long)(seconds * 1e9);
        ts.tv_sec += (time_t)(ns / 1000000000LL);
        ts.tv_nsec = (long)(ns % 1000000000LL);
    #if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 30))
        return pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &ts);
    #else
        return pthread_mutex_timedlock(m, &ts);
    #endif
    #else
        (void)m; (void)seconds; return ENOSYS;
    #endif
    }
    /* Try again for a few microseconds before sleeping: a critical section
       lasts well under a microsecond, a futex sleep and wake-up far longer. */
    static int ms_lock_spin(ms_lock_t *m, int tries) {
    #if MS_SHM_SUPPORTED
        int rc = EBUSY, i;
        for (i = 0; i < tries && rc == EBUSY; i++) {
    #if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
    #elif defined(__aarch64__)
            __asm__ __volatile__("yield");
    #endif
            rc = pthread_mutex_trylock(m);
        }
        return rc;
    #else
        (void)m; (void)tries; return ENOSYS;
    #endif
    }
    static int ms_lock_consistent(ms_lock_t *m) {
    #if MS_SHM_SUPPORTED
        return pthread_mutex_consistent(m);
    #else
        (void)m; return ENOSYS;
    #endif
    }
    static void ms_lock_release(ms_lock_t *m) {
    #if MS_SHM_SUPPORTED
        pthread_mutex_unlock(m);
    #else
        (void)m;
    #endif
    }

    /* -- this process's pid, kept current across fork() -------------------- */
    static int32_t ms_pid = 0;
    #if MS_SHM_SUPPORTED
    static void ms_pid_refresh(void) { ms_pid = (int32_t)getpid(); }
    static void ms_pid_init(void) { ms_pid_refresh(); pthread_atfork(NULL, NULL, ms_pid_refresh); }
    #else
    static void ms_pid_init(void) { }
    #endif

    /* -- commit stores: one aligned store, ordered after the data ----------- */
    static inline void ms_store_u64(uint64_t *p, uint64_t v) {
    #if defined(__GNUC__) || defined(__clang__)
        __atomic_store_n(p, v, __ATOMIC_RELEASE);
    #else
        *(volatile uint64_t *)p = v;
    #endif
    }
    static inline void ms_store_f64(double *p, double v) {
        uint64_t bits;
        memcpy(&bits, &v, 8);
        ms_store_u64((uint64_t *)p, bits);
    }

    /* -- kill points: tests stop a process inside a critical section --------
       _set_kill_point(n, fd): at point n the process writes one byte to fd and
       stops itself (SIGSTOP); the test then SIGKILLs it, or SIGCONTs it. */
    static volatile int ms_kill_point = 0;
    static int ms_kill_fd = -1;
    static void ms_kill_here(void) {
    #if MS_SHM_SUPPORTED
        char c = 'k';
        ssize_t r;
        ms_kill_point = 0;
        if (ms_kill_fd >= 0) r = write(ms_kill_fd, &c, 1);
        (void)r;
        raise(SIGSTOP);
    #endif
    }
    #if !defined(__GNUC__) && !defined(__clang__)
      #define __builtin_expect(x, y) (x)
    #endif
    #define MS_KILL_POINT(n) do { if (__builtin_expect(ms_kill_point == (n), 0)) ms_kill_here(); } while (0)

    /* -- SipHash (Aumasson & Bernstein), c compression and d finalization rounds;
       keys hash with SipHash-1-3 under the segment's 128-bit seed. ------------ */
    #define MS_ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
    #define MS_SIPROUND do { \
        v0 += v1; v1 = MS_ROTL(v1, 13); v1 ^= v0; v0 = MS_ROTL(v0, 32); \
        v2 += v3; v3 = MS_ROTL(v3, 16); v3 ^= v2; \
        v0 += v3; v3 = MS_ROTL(v3, 21); v3 ^= v0; \
        v2 += v1; v1 = MS_ROTL(v1, 17); v1 ^= v2; v2 = MS_ROTL(v2, 32); } while (0)
    static uint64_t ms_siphash(uint64_t k0, uint64_t k1, const unsigned char *in, size_t len, int c, int d) {
        uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
        uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
        uint64_t m, b = ((uint64_t)len) << 56;
        const unsigned char *end = in + len - (len % 8);
        int i, r;
        for (; in != end; in += 8) {
            m = 0;
            for (i = 0; i < 8; i++) m |= ((uint64_t)in[i]) << (8 * i);   /* little-endian load */
            v3 ^= m;
            for (r = 0; r < c; r++) MS_SIPROUND;
            v0 ^= m;
        }
        for (i = 0; i < (int)(len & 7); i++) b |= ((uint64_t)in[i]) << (8 * i);
        v3 ^= b;
        for (r = 0; r < c; r++) MS_SIPROUND;
        v0 ^= b;
        v2 ^= 0xff;
        for (r = 0; r < d; r++) MS_SIPROUND;
        return v0 ^ v1 ^ v2 ^ v3;
    }
    """
    int MS_SHM_SUPPORTED
    int EOWNERDEAD, ENOTRECOVERABLE, ETIMEDOUT, EBUSY
    ctypedef struct ms_lock_t:
        pass
    int ms_lock_init(ms_lock_t* m) noexcept nogil
    int ms_lock_try(ms_lock_t* m) noexcept nogil
    int ms_lock_wait(ms_lock_t* m, double seconds) noexcept nogil
    int ms_lock_spin(ms_lock_t* m, int tries) noexcept nogil
    int ms_lock_consistent(ms_lock_t* m) noexcept nogil
    void ms_lock_release(ms_lock_t* m) noexcept nogil
    int32_t ms_pid
    void ms_pid_init() noexcept nogil
    void ms_store_u64(uint64_t* p, uint64_t v) noexcept nogil
    void ms_store_f64(double* p, double v) noexcept nogil
    int ms_kill_point
    int ms_kill_fd
    void kill_point "MS_KILL_POINT"(int n) noexcept nogil
    uint64_t ms_siphash(uint64_t k0, uint64_t k1, const unsigned char* data, size_t n, int c, int d) noexcept nogil

ms_pid_init()

__all__ = ["ShmCache", "SUPPORTED", "LAYOUT_VERSION", "KILL_POINTS", "BLOCK_BYTES"]

# -- layout ---------------------------------------------------------------------

#: Whether this build has the shared-memory core (robust process-shared mutexes: Linux); when
#: False, constructing a ShmCache raises RuntimeError.
SUPPORTED = bool(MS_SHM_SUPPORTED)

#: Bumped whenever the segment's layout changes: a segment of another version is refused.
LAYOUT_VERSION = 1
cdef bytes MAGIC = b"MSTORESHM\0"[:8]

cdef enum:
    BLOCK = 64                  # arena block size
    CHAIN_HEADER = 16           # deadline (double), key length (uint32), zero (uint32)
    MAX_KEY_BYTES = 4096        # 1024 chars of UTF-8
    KIND_BYTES = 0
    KIND_ASCII = 1
    KIND_UTF8 = 2

BLOCK_BYTES = BLOCK
cdef int64_t MAX_SESSION_BYTES = (1 << 27) - 1     # fits the record's 28-bit length
cdef int64_t MAX_CAPACITY = 1 << 28
cdef int64_t MAX_BLOCKS = (1 << 31) - 2

ctypedef struct SegHeader:
    char magic[8]
    uint32_t layout_version
    uint32_t header_bytes           # sizeof(SegHeader) and sizeof(Shard): the ABI
    uint32_t shard_bytes
    uint32_t owner_uid
    uint64_t total_bytes
    uint64_t seed0
    uint64_t seed1
    int64_t capacity
    int64_t max_session_bytes
    int64_t arena_bytes
    int64_t nblocks
    int32_t policy
    int32_t nshards
    uint64_t off_shard
    uint64_t off_slots
    uint64_t off_table
    uint64_t off_heap_slot
    uint64_t off_heap_key
    uint64_t off_records
    uint64_t off_block_next
    uint64_t off_marks
    uint64_t off_blocks

ctypedef struct Shard:
    ms_lock_t lock
    int32_t owner_pid               # last locker (for the timeout message)
    int32_t block_free_head         # free blocks, chained through block_next
    int64_t blocks_free
    uint64_t recoveries             # times a dead holder's half-done work was repaired
    uint64_t stale                  # expired sessions served once (stale=True stores)
    SlotsState st


# Named points inside the critical sections where a test can stop the process
# (see _set_kill_point); each is a place where a process can die.
KILL_POINTS = {
    "read:locked": 1,           # get() holds the lock, value not yet copied out
    "read:promoted": 2,         # get() moved the entry in recency, lock held
    "new:blocks": 3,            # new entry: blocks taken off the free list
    "new:written": 4,           # new entry: key and value written, slot not taken
    "new:slot": 5,              # new entry: slot filed everywhere, record not committed
    "new:committed": 6,         # new entry: record committed, lock held
    "over:blocks": 7,           # overwrite: fresh blocks taken
    "over:written": 8,          # overwrite: new value written, record not switched
    "over:committed": 9,        # overwrite: record switched, old blocks not freed
    "over:freed": 10,           # overwrite: old blocks freed, expiry not refiled
    "over:recency": 11,         # overwrite: made most recently used, nothing else done yet
    "remove:uncommitted": 12,   # removal: record cleared, slot still filed
    "remove:slot": 13,          # removal: slot freed, blocks not freed
    "evict:between": 14,        # making room: one victim removed, more to go
    "touch:deadline": 15,       # touch: deadline stored, recency/expiry not updated
    "touch:recency": 16,        # touch: recency updated, expiry not refiled
    "expire:batch": 17,         # expire/purge: one entry removed, batch going on
    "clear:records": 18,        # clear: some records cleared
    "clear:reset": 19,          # clear: records cleared, structures not reset
    "recover:records": 20,      # recovery: records validated, structures not rebuilt
    "recover:rebuilt": 21,      # recovery: structures rebuilt, free blocks not
}

cdef enum:
    KP_READ_LOCKED = 1
    KP_READ_PROMOTED
    KP_NEW_BLOCKS
    KP_NEW_WRITTEN
    KP_NEW_SLOT
    KP_NEW_COMMITTED
    KP_OVER_BLOCKS
    KP_OVER_WRITTEN
    KP_OVER_COMMITTED
    KP_OVER_FREED
    KP_OVER_RECENCY
    KP_REMOVE_UNCOMMITTED
    KP_REMOVE_SLOT
    KP_EVICT_BETWEEN
    KP_TOUCH_DEADLINE
    KP_TOUCH_RECENCY
    KP_EXPIRE_BATCH
    KP_CLEAR_RECORDS
    KP_CLEAR_RESET
    KP_RECOVER_RECORDS
    KP_RECOVER_REBUILT


def _set_kill_point(name, int fd=-1):
    """Test only: stop this process (SIGSTOP, after writing a byte to ``fd``) at a named point; None: off."""
    global ms_kill_point, ms_kill_fd
    if name is None:
        ms_kill_point = 0
        return
    ms_kill_fd = fd
    ms_kill_point = KILL_POINTS[name]


def _siphash(bytes key, bytes data, int c=1, int d=3):
    """SipHash-c-d of ``data`` under a 16-byte key (for the test vectors)."""
    if len(key) != 16:
        raise ValueError("key must be 16 bytes")
    k0 = int.from_bytes(key[:8], "little")
    k1 = int.from_bytes(key[8:], "little")
    return ms_siphash(k0, k1, <const unsigned char*>PyBytes_AS_STRING(data), len(data), c, d)


#: Seconds a process waits for the segment's lock before TimeoutError (a holder
#: that died releases it at once: this bounds the wait on a *stopped* holder).
cdef double lock_timeout = 10.0
cdef int SPIN_TRIES = 200              # ~10 µs of trylock + pause before sleeping


def _set_lock_timeout(double seconds):
    """Test only: the lock wait bound, in seconds."""
    global lock_timeout
    lock_timeout = seconds


cdef inline uint64_t align64(uint64_t n) noexcept nogil:
    return (n + 63) & ~(<uint64_t>63)


cdef inline int64_t blocks_for(int64_t key_len, int64_t value_len) noexcept nogil:
    return (CHAIN_HEADER + key_len + value_len + BLOCK - 1) // BLOCK


cdef inline uint64_t pack_record(int32_t first, int64_t value_len, int kind) noexcept nogil:
    return (<uint64_t>(first + 1)) | ((<uint64_t>value_len) << 32) | ((<uint64_t>kind) << 60)


cdef inline int32_t record_first(uint64_t w) noexcept nogil:
    return <int32_t>(w & 0xFFFFFFFFu) - 1


cdef inline int64_t record_length(uint64_t w) noexcept nogil:
    return <int64_t>((w >> 32) & 0x0FFFFFFF)


cdef inline int record_kind(uint64_t w) noexcept nogil:
    return <int>(w >> 60)


_NAME = re.compile(r"[A-Za-z0-9_.-]{1,200}")
SHM_DIR = "/dev/shm"

cdef object MISSING = object()
cdef object REFUSED = object()
cdef tuple NO_REMOVALS = ()
cdef str SET = "set"
cdef str EXPIRE = "expire"
cdef str EVICT = "evict"
cdef double INF = INFINITY

PROBATION_SHARE = 0.1       # as _lru's: probation's share of the capacity under "protect"
EXPIRE_BATCH = 256          # entries expire()/purge() remove per lock hold


def remove_dead_temporaries(str name):
    """Remove the temporary files of creators of ``name`` that died before publishing (their pid is gone)."""
    prefix = f".memorystore.{name}."
    try:
        entries = os.listdir(SHM_DIR)
    except OSError:
        return
    for entry in entries:
        if not entry.startswith(prefix):
            continue
        pid = entry[len(prefix):].split(".", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
            continue                        # alive: still creating
        except ProcessLookupError:
            pass
        except OSError:
            continue                        # someone else's: not ours to judge
        try:
            os.unlink(os.path.join(SHM_DIR, entry))
        except OSError:
            pass


def segment_path(str name):
    """The file that holds the segment of ``name``."""
    return os.path.join(SHM_DIR, "memorystore." + name)


cdef int check_int(object value, str what, int64_t low, int64_t high) except -1:
    # As MemoryStore's max: TypeError for anything but an int, floats such as 1e6 included.
    if isinstance(value, bool) or not isinstance(value, int):
        hint = f" (write {int(value)} for {value!r})" if isinstance(value, float) and value.is_integer() else ""
        raise TypeError(f"{what} must be an int, not {type(value).__name__}{hint}")
    if not low <= value <= high:
        raise ValueError(f"{what} must be between {low} and {high}, not {value}")
    return 0


def default_arena_bytes(int64_t capacity, int64_t max_session_bytes):
    """The arena for ``capacity`` sessions when none is given: 2 KiB a session
    (a 1 KiB session with its key and block rounding fits in 1.2 KiB), and at
    least room for two of the largest sessions."""
    need = 2 * blocks_for(MAX_KEY_BYTES, max_session_bytes) * BLOCK
    return max(capacity * 2048, need)


@cython.final
cdef class Utf8:
    """UTF-8 bytes copied out under the lock, decoded to str after it."""
    cdef bytes raw

    def __cinit__(self, bytes raw):
        self.raw = raw

    cdef object decode(self):
        return PyUnicode_DecodeUTF8(PyBytes_AS_STRING(self.raw), PyBytes_GET_SIZE(self.raw), "surrogatepass")


@cython.final
cdef class ShmCache:
    """str keys to str/bytes values in a shared-memory segment (the core of SharedMemoryStore).

    The same core API as ``LRUCache`` (get, put, pop, touch, in, pop_expired,
    expire, purge, entries, clear, len, stats, reset_stats, check_invariants),
    over a segment every process opening ``name`` shares.
    """

    cdef:
        object _mmap, _timer, _name, _path, _inode, _eviction
        Py_buffer _buffer
        bint _has_buffer, _collect
        readonly bint created
        char* base
        SegHeader* g
        Shard* sh
        SlotsView v
        uint64_t* records
        int32_t* block_next
        uint8_t* marks
        char* blocks
        int64_t nblocks, max_session_bytes
        uint64_t seed0, seed1
        double clock_slack              # clock_slack() with the default clock, 0 with a user timer
        object __weakref__

    def __init__(self, name, *, capacity, max_session_bytes=16384, arena_bytes=None, eviction="protect",
                 mode=0o600, timer=None, collect=True):
        if self.base != NULL:
            raise TypeError("ShmCache.__init__() may not be called on a cache in use")
        if not MS_SHM_SUPPORTED:
            raise RuntimeError(
                f"SharedMemoryStore is not available on this platform ({sys.platform}): it needs robust "
                f"process-shared mutexes and /dev/shm, which memorystore uses on Linux only (macOS and "
                f"Windows have no robust process-shared mutex; this build was made without them). "
                f"Use memorystore.redis.RedisStore to share sessions between processes, or MemoryStore "
                f"in a single process")
        if type(name) is not str:
            raise TypeError(f"name must be a str, not {type(name).__name__}")
        if not _NAME.fullmatch(name) or name in (".", ".."):
            raise ValueError(f"name must be 1 to 200 letters, digits, '-', '_' or '.', not {name!r}")
        check_int(capacity, "capacity", 1, MAX_CAPACITY)
        check_int(max_session_bytes, "max_session_bytes", 1, MAX_SESSION_BYTES)
        need = 2 * blocks_for(MAX_KEY_BYTES, max_session_bytes) * BLOCK
        if arena_bytes is None:
            arena_bytes = default_arena_bytes(capacity, max_session_bytes)
        else:
            check_int(arena_bytes, "arena_bytes", 1, MAX_BLOCKS * BLOCK)
            if arena_bytes < need:
                raise ValueError(
                    f"arena_bytes={arena_bytes} is too small: it must hold two sessions of "
                    f"max_session_bytes={max_session_bytes} with the longest sid ({need} bytes)")
        if type(eviction) is not str:
            raise TypeError(f"eviction must be 'lru' or 'protect', not {type(eviction).__name__}")
        if eviction not in ("lru", "protect"):
            raise ValueError(f"eviction must be 'lru' or 'protect', not {eviction!r}")
        check_int(mode, "mode", 0, 0o777)
        if mode & 0o600 != 0o600:
            raise ValueError(f"mode must let the owner read and write (0o600), not {oct(mode)}")
        if timer is not None and not callable(timer):
            raise TypeError("timer must be callable or None")
        self._timer = timer
        self.clock_slack = clock_slack() if timer is None else 0.0
        self._name = name
        self._eviction = eviction
        self._collect = bool(collect)
        self._path = segment_path(name)
        params = {
            "capacity": capacity,
            "max_session_bytes": max_session_bytes,
            "arena_bytes": arena_bytes,
            "eviction": eviction,
        }
        for _attempt in range(100):
            try:
                fd = os.open(self._path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
            except FileNotFoundError:
                if self._create(params, mode):
                    return
                continue                # another process published it first: attach to that one
            try:
                self._attach(fd, params)
            finally:
                os.close(fd)
            return
        raise RuntimeError(f"could not create or open the shared segment {self._path}")

    # -- creating and attaching -----------------------------------------------------

    cdef uint64_t _layout(self, dict params, dict offsets):
        # Offsets of every part for these parameters; returns the total size.
        cdef int64_t capacity = params["capacity"]
        cdef int64_t nblocks = params["arena_bytes"] // BLOCK
        cdef int64_t table_size = table_size_for(<int32_t>capacity)
        cdef uint64_t off = align64(sizeof(SegHeader))
        offsets["shard"] = off
        off = align64(off + sizeof(Shard))
        offsets["slots"] = off
        off = align64(off + capacity * sizeof(Slot))
        offsets["table"] = off
        off = align64(off + table_size * sizeof(Bucket))
        offsets["heap_slot"] = off
        off = align64(off + (capacity + 1) * sizeof(int32_t))
        offsets["heap_key"] = off
        off = align64(off + (capacity + 1) * sizeof(double))
        offsets["records"] = off
        off = align64(off + capacity * sizeof(uint64_t))
        offsets["block_next"] = off
        off = align64(off + nblocks * sizeof(int32_t))
        offsets["marks"] = off
        off = align64(off + (nblocks + 7) // 8)
        offsets["blocks"] = off
        off = align64(off + nblocks * BLOCK)
        return off

    cdef int _map(self, int fd, uint64_t size) except -1:
        # MAP_POPULATE: map every page now, so no operation takes a page fault (inside the lock)
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        self._mmap = mmap.mmap(fd, size, flags=flags, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        PyObject_GetBuffer(self._mmap, &self._buffer, PyBUF_WRITABLE)
        self._has_buffer = True
        self.base = <char*>self._buffer.buf
        self.g = <SegHeader*>self.base
        return 0

    cdef int _bind(self) except -1:
        # Pointers into this process's mapping, from the header's offsets.
        cdef SegHeader* g = self.g
        self.sh = <Shard*>(self.base + g.off_shard)
        self.v.st = &self.sh.st
        self.v.slots = <Slot*>(self.base + g.off_slots)
        self.v.table = <Bucket*>(self.base + g.off_table)
        self.v.sizes = NULL
        self.v.heap_slot = <int32_t*>(self.base + g.off_heap_slot)
        self.v.heap_key = <double*>(self.base + g.off_heap_key)
        self.records = <uint64_t*>(self.base + g.off_records)
        self.block_next = <int32_t*>(self.base + g.off_block_next)
        self.marks = <uint8_t*>(self.base + g.off_marks)
        self.blocks = self.base + g.off_blocks
        self.nblocks = g.nblocks
        self.max_session_bytes = g.max_session_bytes
        self.seed0 = g.seed0
        self.seed1 = g.seed1
        return 0

    cdef bint _create(self, dict params, int mode) except -1:
        # Build the segment under a temporary name, then publish it with link():
        # True when published, False when another process published one first.
        cdef dict offsets = {}
        cdef uint64_t total = self._layout(params, offsets)
        cdef SegHeader* g
        cdef int rc
        cdef int64_t b
        remove_dead_temporaries(self._name)
        tmp = os.path.join(SHM_DIR, f".memorystore.{self._name}.{os.getpid()}.{os.urandom(6).hex()}")
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
        try:
            os.fchmod(fd, mode)         # not narrowed by the umask
            try:
                os.posix_fallocate(fd, 0, total)     # room now, not SIGBUS on a full /dev/shm later
            except OSError as exc:
                raise OSError(exc.errno, f"cannot reserve {total} bytes in {SHM_DIR} for the shared "
                                         f"segment: {exc.strerror}") from None
            self._map(fd, total)
            g = self.g
            seed = os.urandom(16)
            g.layout_version = LAYOUT_VERSION
            g.header_bytes = sizeof(SegHeader)
            g.shard_bytes = sizeof(Shard)
            g.owner_uid = os.geteuid()
            g.total_bytes = total
            g.seed0 = int.from_bytes(seed[:8], "little")
            g.seed1 = int.from_bytes(seed[8:], "little")
            g.capacity = params["capacity"]
            g.max_session_bytes = params["max_session_bytes"]
            g.arena_bytes = params["arena_bytes"]
            g.nblocks = params["arena_bytes"] // BLOCK
            g.policy = POLICY_PROTECT if params["eviction"] == "protect" else POLICY_LRU
            g.nshards = 1
            g.off_shard = offsets["shard"]
            g.off_slots = offsets["slots"]
            g.off_table = offsets["table"]
            g.off_heap_slot = offsets["heap_slot"]
            g.off_heap_key = offsets["heap_key"]
            g.off_records = offsets["records"]
            g.off_block_next = offsets["block_next"]
            g.off_marks = offsets["marks"]
            g.off_blocks = offsets["blocks"]
            self._bind()
            rc = ms_lock_init(&self.sh.lock)
            if rc:
                raise OSError(rc, f"cannot initialise the segment's mutex: {os.strerror(rc)}")
            st = self.v.st
            st.capacity = <int32_t>g.capacity
            st.table_size = table_size_for(st.capacity)
            st.heap_capacity = st.capacity + 1
            st.maxsize = st.capacity
            st.reserve = max(1, <int64_t>(st.capacity * PROBATION_SHARE))
            st.policy = g.policy
            slots_reset(&self.v)
            self.sh.block_free_head = NIL
            for b in range(self.nblocks - 1, -1, -1):
                self.block_next[b] = self.sh.block_free_head
                self.sh.block_free_head = <int32_t>b
            self.sh.blocks_free = self.nblocks
            memcpy(g.magic, <const char*>MAGIC, 8)    # last: a complete segment
            try:
                os.link(tmp, self._path)
            except FileExistsError:
                self._unmap()
                return False
            self._inode = os.fstat(fd)[stat.ST_INO]
            self.created = True
            return True
        finally:
            os.close(fd)
            os.unlink(tmp)

    cdef int _attach(self, int fd, dict params) except -1:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{self._path} is not a regular file")
        if info.st_uid != os.geteuid():
            raise PermissionError(
                f"the shared segment {self._path} is owned by uid {info.st_uid}, not by this user "
                f"(uid {os.geteuid()}): refusing to attach")
        if info.st_size < sizeof(SegHeader):
            raise ValueError(f"{self._path} is not a memorystore segment (too small)")
        self._map(fd, info.st_size)
        g = self.g
        differs = []
        if (<bytes>g.magic[:8]) != MAGIC:
            self._unmap()
            raise ValueError(f"{self._path} is not a memorystore segment (bad magic)")
        if g.layout_version != LAYOUT_VERSION or g.header_bytes != sizeof(SegHeader) or \
                g.shard_bytes != sizeof(Shard):
            version = g.layout_version
            self._unmap()
            raise ValueError(
                f"the shared segment {self._path} has layout version {version} "
                f"(or another ABI); this memorystore uses version {LAYOUT_VERSION}: "
                f"unlink it or use another name")
        if g.total_bytes != <uint64_t>info.st_size:
            self._unmap()
            raise ValueError(f"the shared segment {self._path} is truncated")
        held = {
            "capacity": g.capacity,
            "max_session_bytes": g.max_session_bytes,
            "arena_bytes": g.arena_bytes,
            "eviction": "protect" if g.policy == POLICY_PROTECT else "lru",
        }
        for key, value in params.items():
            if held[key] != value:
                differs.append(f"{key}={held[key]!r} (given {value!r})")
        if differs:
            self._unmap()
            raise ValueError(f"the shared segment {self._path} was created with other parameters: "
                             + ", ".join(differs))
        self._bind()
        self._inode = info.st_ino
        self.created = False
        return 0

    cdef void _unmap(self) noexcept:
        if self._has_buffer:
            PyBuffer_Release(&self._buffer)
            self._has_buffer = False
        self.base = NULL
        self.g = NULL
        self.sh = NULL
        if self._mmap is not None:
            try:
                self._mmap.close()
            except BaseException:
                pass
            self._mmap = None

    def __dealloc__(self):
        if self._has_buffer:
            PyBuffer_Release(&self._buffer)
            self._has_buffer = False

    def unlink(self):
        """Remove the segment's name (if it is still this segment); mapped processes keep working."""
        try:
            info = os.stat(self._path, follow_symlinks=False)
        except FileNotFoundError:
            return
        if info.st_ino == self._inode:
            try:
                os.unlink(self._path)
            except FileNotFoundError:
                pass

    # -- properties -----------------------------------------------------------------

    @property
    def name(self):
        return self._name

    @property
    def path(self):
        return self._path

    @property
    def capacity(self):
        return self.g.capacity

    @property
    def max_session_bytes(self):
        return self.g.max_session_bytes

    @property
    def arena_bytes(self):
        return self.g.arena_bytes

    @property
    def eviction(self):
        return self._eviction

    @property
    def maxsize(self):
        return self.g.capacity

    @property
    def currsize(self):
        """Entries held, expired ones not yet removed included."""
        return self.v.st.size

    def __repr__(self):
        return (f"ShmCache({self._name!r}, capacity={self.g.capacity}, "
                f"max_session_bytes={self.g.max_session_bytes}, arena_bytes={self.g.arena_bytes})")

    def __reduce_ex__(self, protocol):
        raise TypeError("cannot pickle or copy ShmCache objects; open the segment by name in each process")

    # -- the lock ---------------------------------------------------------------------

    cdef int _acquire(self) except -1:
        # Lock the segment: try, spin a little, then sleep with the GIL released.
        # A sleeper that gets the mutex hands it straight back and retries with
        # the GIL held: the mutex is never held while waiting for the GIL.
        cdef int rc = ms_lock_try(&self.sh.lock)
        cdef double timeout = lock_timeout, waited = 0, started
        if rc == EBUSY:
            rc = ms_lock_spin(&self.sh.lock, SPIN_TRIES)
            while rc == EBUSY:
                started = default_clock()
                with nogil:
                    rc = ms_lock_wait(&self.sh.lock, timeout - waited)
                    if rc == 0:
                        ms_lock_release(&self.sh.lock)
                        rc = ms_lock_spin(&self.sh.lock, SPIN_TRIES)
                waited += default_clock() - started
                if rc == EBUSY and waited >= timeout:
                    rc = ETIMEDOUT
        if rc == 0:
            self.sh.owner_pid = ms_pid
            return 0
        if rc == EOWNERDEAD:
            # The holder died inside a critical section: repair, then mark consistent.
            self.sh.owner_pid = ms_pid
            self._recover()
            self.sh.recoveries += 1
            ms_lock_consistent(&self.sh.lock)
            return 0
        if rc == ETIMEDOUT:
            raise TimeoutError(
                f"the shared segment {self._path} has been locked for over {timeout:g} s "
                f"(last locked by pid {self.sh.owner_pid}: stopped?)")
        raise OSError(rc, f"cannot lock the shared segment {self._path}: {os.strerror(rc)}")

    cdef inline void _release(self) noexcept nogil:
        ms_lock_release(&self.sh.lock)

    # -- clock --------------------------------------------------------------------------

    cdef inline double _user_time(self) except? -1.0:
        if self._timer is None:
            return NAN
        return float(self._timer())

    cdef inline double _clock(self, double user_time) noexcept nogil:
        return default_clock() if user_time != user_time else user_time

    def now(self):
        return self._clock(self._user_time())

    cdef inline double _lifetime(self, object ttl) except? -1.0:
        cdef double seconds
        if ttl is None:
            return INF
        if type(ttl) is float or type(ttl) is int:
            seconds = ttl
        elif isinstance(ttl, timedelta):
            seconds = ttl.total_seconds()
        elif isinstance(ttl, bool):
            raise TypeError("ttl must be a number of seconds or a timedelta, not bool")
        else:
            seconds = float(ttl)
        if seconds != seconds:
            raise ValueError("ttl must not be NaN")
        return seconds

    # -- blocks ------------------------------------------------------------------------

    cdef inline char* _block(self, int32_t b) noexcept nogil:
        return self.blocks + <int64_t>b * BLOCK

    cdef int32_t _blocks_take(self, int64_t n) noexcept nogil:
        # Take n blocks off the free list (there are that many): they are already
        # chained in order; the last one's next becomes NIL.
        cdef int32_t first = self.sh.block_free_head, b = first
        cdef int64_t _i
        for _i in range(n - 1):
            b = self.block_next[b]
        self.sh.block_free_head = self.block_next[b]
        self.block_next[b] = NIL
        self.sh.blocks_free -= n
        return first

    cdef void _blocks_give(self, uint64_t w) noexcept nogil:
        # Put the chain of an uncommitted record back on the free list.
        cdef int32_t first = record_first(w), b = first
        cdef int64_t n = blocks_for((<uint32_t*>(self._block(first) + 8))[0], record_length(w)), _i
        for _i in range(n - 1):
            b = self.block_next[b]
        self.block_next[b] = self.sh.block_free_head
        self.sh.block_free_head = first
        self.sh.blocks_free += n

    cdef void _chain_write(self, int32_t b, int64_t pos, const char* src, int64_t n) noexcept nogil:
        # Copy n bytes into the chain starting at block b, byte pos of the chain's data.
        cdef int64_t room
        while pos >= BLOCK:
            b = self.block_next[b]
            pos -= BLOCK
        while n > 0:
            room = BLOCK - pos
            if room > n:
                room = n
            memcpy(self._block(b) + pos, src, room)
            src += room
            n -= room
            pos = 0
            if n:
                b = self.block_next[b]

    cdef void _chain_read(self, int32_t b, int64_t pos, char* dst, int64_t n) noexcept nogil:
        cdef int64_t room
        while pos >= BLOCK:
            b = self.block_next[b]
            pos -= BLOCK
        while n > 0:
            room = BLOCK - pos
            if room > n:
                room = n
            memcpy(dst, self._block(b) + pos, room)
            dst += room
            n -= room
            pos = 0
            if n:
                b = self.block_next[b]

    cdef bint _chain_equals(self, int32_t b, int64_t pos, const char* src, int64_t n) noexcept nogil:
        cdef int64_t room
        while n > 0:
            room = BLOCK - pos
            if room > n:
                room = n
            if memcmp(self._block(b) + pos, src, room) != 0:
                return False
            src += room
            n -= room
            pos = 0
            if n:
                b = self.block_next[b]
        return True

    cdef inline uint32_t _key_len(self, int32_t s) noexcept nogil:
        return (<uint32_t*>(self._block(record_first(self.records[s])) + 8))[0]

    cdef inline double* _deadline_at(self, int32_t s) noexcept nogil:
        return <double*>self._block(record_first(self.records[s]))

    cdef int32_t _fill(self, int64_t need, double deadline, const char* key, int64_t key_len,
                       const char* value, int64_t value_len, int taken_point) noexcept nogil:
        # A fresh chain holding deadline, key and value (not yet referenced by any record).
        cdef int32_t first = self._blocks_take(need)
        cdef char* head = self._block(first)
        kill_point(taken_point)
        (<double*>head)[0] = deadline
        (<uint32_t*>(head + 8))[0] = <uint32_t>key_len
        (<uint32_t*>(head + 12))[0] = 0
        self._chain_write(first, CHAIN_HEADER, key, key_len)
        self._chain_write(first, CHAIN_HEADER + key_len, value, value_len)
        return first

    # -- lookups --------------------------------------------------------------------------

    cdef inline uint32_t _hash(self, const char* key, Py_ssize_t n) noexcept nogil:
        return <uint32_t>ms_siphash(self.seed0, self.seed1, <const unsigned char*>key, n, 1, 3)

    cdef int32_t _find(self, const char* key, Py_ssize_t n, uint32_t h) noexcept nogil:
        # The slot holding key, or NIL.
        cdef int32_t size = self.v.st.table_size
        cdef int32_t i = home_bucket(h, size), s
        while True:
            s = self.v.table[i].slot
            if s < 0:
                return NIL
            if self.v.table[i].hash32 == h and self._key_len(s) == n and \
                    self._chain_equals(record_first(self.records[s]), CHAIN_HEADER, key, n):
                return s
            i += 1
            if i == size:
                i = 0

    cdef object _value(self, int32_t s):
        # A new object holding the value in slot s (bytes, or str; a UTF-8 str comes back as bytes
        # for _decode to finish after the lock).
        cdef uint64_t w = self.records[s]
        cdef int64_t n = record_length(w)
        cdef int64_t pos = CHAIN_HEADER + self._key_len(s)
        cdef object out
        if record_kind(w) == KIND_ASCII:
            out = PyUnicode_New(n, 127)
            self._chain_read(record_first(w), pos, <char*>PyUnicode_DATA(out), n)
        else:
            out = PyBytes_FromStringAndSize(NULL, n)
            self._chain_read(record_first(w), pos, PyBytes_AS_STRING(out), n)
            if record_kind(w) == KIND_UTF8:
                return Utf8(out)
        return out

    cdef object _key(self, int32_t s):
        cdef int64_t n = self._key_len(s)
        cdef bytes raw = PyBytes_FromStringAndSize(NULL, n)
        self._chain_read(record_first(self.records[s]), CHAIN_HEADER, PyBytes_AS_STRING(raw), n)
        return Utf8(raw)

    # -- removal and room ---------------------------------------------------------------

    cdef list _remove(self, int32_t s, str reason, list removed, object key, bint collect):
        # Take the entry in slot s out: its record cleared (the commit point), then
        # its slot and blocks freed.  With collect, (key, value, reason) goes to removed.
        cdef uint64_t w = self.records[s]
        if collect:
            if removed is None:
                removed = []
            removed.append((self._key(s) if key is None else key, self._value(s), reason))
        ms_store_u64(&self.records[s], 0)
        kill_point(KP_REMOVE_UNCOMMITTED)
        slot_free(&self.v, s)
        kill_point(KP_REMOVE_SLOT)
        self._blocks_give(w)
        return removed

    cdef list _make_room(self, int32_t keep, bint need_slot, int64_t need_blocks, double now, list removed):
        # Free a slot (need_slot) and need_blocks blocks: expired entries first,
        # then the eviction policy's victims (never keep).
        cdef int32_t s
        cdef SlotsState* st = self.v.st
        while (need_slot and st.count >= st.capacity) or self.sh.blocks_free < need_blocks:
            s = expiry_next(&self.v, now)
            if s >= 0:
                st.counters.expirations += 1
                removed = self._remove(s, EXPIRE, removed, None, self._collect)
            else:
                s = slots_victim(&self.v, keep)
                if s < 0:
                    raise RuntimeError("shared segment: no room even with every other entry evicted")
                st.counters.evictions += 1
                if not (self.v.slots[s].stamp & SLOT_READ):
                    st.counters.evicted_unread += 1
                removed = self._remove(s, EVICT, removed, None, self._collect)
            kill_point(KP_EVICT_BETWEEN)
        return removed

    # -- the core API ---------------------------------------------------------------------

    def put(self, key, value, ttl=None, size=None, only_if_absent=False):
        """Store ``value`` (str or bytes) under ``key`` (str); return what left as (key, value, reason).

        As ``LRUCache.put``: ``None`` when ``only_if_absent`` found a live entry.
        A value over ``max_session_bytes`` raises ValueError and changes nothing.
        Without ``collect``, removed values are not copied out (the triples are empty).
        """
        cdef Py_ssize_t key_len, value_len
        cdef object held = self._key_held(key, True)
        cdef const char* k = key_pointer(held, &key_len)
        cdef const char* val
        cdef int kind
        cdef double lifetime = self._lifetime(ttl)
        cdef double now, deadline
        cdef int64_t need
        cdef uint32_t h
        cdef int32_t s, first
        cdef uint64_t old
        cdef list removed = None
        cdef SlotsState* st = self.v.st
        if PyUnicode_Check(value):
            val = PyUnicode_AsUTF8AndSize(value, &value_len)
            kind = KIND_ASCII if PyUnicode_IS_ASCII(value) else KIND_UTF8
        elif PyBytes_Check(value):
            val = PyBytes_AS_STRING(value)
            value_len = PyBytes_GET_SIZE(value)
            kind = KIND_BYTES
        else:
            raise TypeError(f"a shared store keeps str or bytes values (the serializer's output), "
                            f"not {type(value).__name__}")
        if value_len > self.max_session_bytes:
            self._acquire()
            st.counters.rejected += 1
            self._release()
            raise ValueError(f"the session is {value_len} bytes serialized, over "
                             f"max_session_bytes={self.max_session_bytes}; nothing was stored")
        need = blocks_for(key_len, value_len)
        h = self._hash(k, key_len)
        now = self._user_time()
        self._acquire()
        try:
            now = self._clock(now)
            s = self._find(k, key_len, h)
            if only_if_absent and s >= 0 and self.v.slots[s].deadline > now:
                return None
            if s >= 0 and self.v.slots[s].deadline <= now:      # the old entry expired: it leaves as such
                st.counters.expirations += 1
                removed = self._remove(s, EXPIRE, removed, key, self._collect)
                s = NIL
            deadline = now + lifetime - self.clock_slack   # one tick early: see clock_slack
            if deadline <= now:                                 # ttl <= 0: removes
                if s >= 0:
                    st.counters.deletions += 1
                    removed = self._remove(s, SET, removed, key, self._collect)
                return removed if removed else NO_REMOVALS
            if s >= 0:
                if self._collect:
                    if removed is None:
                        removed = []
                    removed.append((key, self._value(s), SET))
                slot_written(&self.v, s)        # first: most recently used, so never the victim
                kill_point(KP_OVER_RECENCY)
                removed = self._make_room(s, False, need, now, removed)
                first = self._fill(need, deadline, k, key_len, val, value_len, KP_OVER_BLOCKS)
                kill_point(KP_OVER_WRITTEN)
                old = self.records[s]
                ms_store_u64(&self.records[s], pack_record(first, value_len, kind))    # commit
                kill_point(KP_OVER_COMMITTED)
                self._blocks_give(old)
                kill_point(KP_OVER_FREED)
                expiry_file(&self.v, s, deadline)
            else:
                removed = self._make_room(NIL, True, need, now, removed)
                first = self._fill(need, deadline, k, key_len, val, value_len, KP_NEW_BLOCKS)
                kill_point(KP_NEW_WRITTEN)
                s = slot_take(&self.v, h, deadline, 1)
                kill_point(KP_NEW_SLOT)
                ms_store_u64(&self.records[s], pack_record(first, value_len, kind))    # commit
                kill_point(KP_NEW_COMMITTED)
            st.counters.writes += 1
        finally:
            self._release()
        if removed is None:
            return NO_REMOVALS
        return decode_triples(removed)

    cdef object _key_held(self, object key, bint write):
        # What holds the key's bytes: the str itself (its UTF-8 is cached in it), or for a
        # str with lone surrogates its "surrogatepass" UTF-8 (a bijection: strict UTF-8 never
        # has those sequences); None for a read of a key no entry can have.
        cdef Py_ssize_t n
        cdef object held = key
        if type(key) is not str:
            raise TypeError(f"keys of a shared store are str, not {type(key).__name__}")
        try:
            PyUnicode_AsUTF8AndSize(key, &n)
        except UnicodeEncodeError:
            held = key.encode("utf-8", "surrogatepass")
            n = PyBytes_GET_SIZE(held)
        if n == 0 or n > MAX_KEY_BYTES:
            if write:
                raise ValueError(f"a sid is 1 to {MAX_KEY_BYTES} bytes of UTF-8")
            return None
        return held

    def set(self, key, value, ttl=None):
        self.put(key, value, ttl)

    def get(self, key, default=None):
        """The live value (now most recently used), else ``default``."""
        return self._read(key, default, True)

    def peek(self, key, default=None):
        """The live value without changing recency, else ``default``."""
        return self._read(key, default, False)

    cdef object _read(self, object key, object default, bint promote):
        # get() and peek() in one body: they differ only in the recency update.
        cdef Py_ssize_t n
        cdef object held = self._key_held(key, False)
        cdef const char* k = key_pointer(held, &n)
        cdef uint32_t h
        cdef double now
        cdef int32_t s
        cdef object out = default
        if k == NULL:
            return default
        h = self._hash(k, n)
        now = self._user_time()
        self._acquire()
        try:
            s = self._find(k, n, h)
            if s >= 0 and self.v.slots[s].deadline > self._clock(now):
                if promote:
                    kill_point(KP_READ_LOCKED)
                    slot_read(&self.v, s)
                    kill_point(KP_READ_PROMOTED)
                self.v.st.counters.hits += 1
                out = self._value(s)
            else:
                self.v.st.counters.misses += 1
                if s >= 0:
                    self.v.st.counters.expired += 1
        finally:
            self._release()
        # Utf8 marks a str stored as its UTF-8 bytes; decoded here, after the lock is released.
        if type(out) is Utf8:
            return (<Utf8>out).decode()
        return out

    def __getitem__(self, key):
        value = self.get(key, MISSING)
        if value is MISSING:
            raise KeyError(key)
        return value

    def __setitem__(self, key, value):
        self.put(key, value)

    def __contains__(self, key):
        cdef Py_ssize_t n
        cdef object held = self._key_held(key, False)
        cdef const char* k = key_pointer(held, &n)
        cdef double now
        cdef int32_t s
        if k == NULL:
            return False
        now = self._user_time()
        self._acquire()
        try:
            s = self._find(k, n, self._hash(k, n))
            return s >= 0 and self.v.slots[s].deadline > self._clock(now)
        finally:
            self._release()

    def touch(self, key, ttl=None):
        """Give a live entry a new deadline and make it most recently used; False if none."""
        cdef Py_ssize_t n
        cdef object held = self._key_held(key, False)
        cdef const char* k = key_pointer(held, &n)
        cdef double lifetime = self._lifetime(ttl)
        cdef double now, deadline
        cdef int32_t s
        if k == NULL:
            return False
        now = self._user_time()
        self._acquire()
        try:
            now = self._clock(now)
            s = self._find(k, n, self._hash(k, n))
            if s < 0 or self.v.slots[s].deadline <= now:
                return False
            deadline = now + lifetime - self.clock_slack if lifetime > 0 else now
            ms_store_f64(self._deadline_at(s), deadline)        # the truth: one aligned store
            kill_point(KP_TOUCH_DEADLINE)
            slot_read(&self.v, s)
            kill_point(KP_TOUCH_RECENCY)
            expiry_file(&self.v, s, deadline)
            return True
        finally:
            self._release()

    cdef object _pop(self, object key, bint expired):
        # Remove the live (or, with expired, the expired) entry under key; its value or MISSING.
        cdef Py_ssize_t n
        cdef object held = self._key_held(key, False)
        cdef const char* k = key_pointer(held, &n)
        cdef double now
        cdef int32_t s
        cdef object out = MISSING
        if k == NULL:
            return MISSING
        now = self._user_time()
        self._acquire()
        try:
            now = self._clock(now)
            s = self._find(k, n, self._hash(k, n))
            if s >= 0 and (self.v.slots[s].deadline <= now) == expired:
                out = self._value(s)
                if expired:
                    self.v.st.counters.expirations += 1
                else:
                    self.v.st.counters.deletions += 1
                self._remove(s, None, None, key, False)        # the value is in hand already
        finally:
            self._release()
        if type(out) is Utf8:
            return (<Utf8>out).decode()
        return out

    def pop(self, key, default=MISSING):
        """Remove a live entry and return its value; ``default`` or KeyError if there is none."""
        value = self._pop(key, False)
        if value is MISSING:
            if default is MISSING:
                raise KeyError(key)
            return default
        return value

    def __delitem__(self, key):
        if self._pop(key, False) is MISSING:
            raise KeyError(key)

    def pop_expired(self, key, default=None):
        """If ``key`` is held but expired, remove it and return its value; else ``default``."""
        value = self._pop(key, True)
        return default if value is MISSING else value

    def remaining(self, key):
        """Seconds left for a live key (``math.inf``: never expires); ``None`` if absent or expired."""
        cdef Py_ssize_t n
        cdef object held = self._key_held(key, False)
        cdef const char* k = key_pointer(held, &n)
        cdef double now
        cdef int32_t s
        if k == NULL:
            return None
        now = self._user_time()
        self._acquire()
        try:
            now = self._clock(now)
            s = self._find(k, n, self._hash(k, n))
            if s < 0 or self.v.slots[s].deadline <= now:
                return None
            return self.v.slots[s].deadline + self.clock_slack - now
        finally:
            self._release()

    cdef object _expire_batches(self, bint values):
        # Remove every expired entry, EXPIRE_BATCH per lock hold (a long purge
        # never stalls the other processes); (key, value) pairs if values, else how many.
        cdef double now = self._user_time()
        cdef list out = []
        cdef int32_t s, taken
        cdef Py_ssize_t total = 0
        while True:
            taken = 0
            self._acquire()
            try:
                now = self._clock(now)
                while taken < EXPIRE_BATCH:
                    s = expiry_next(&self.v, now)
                    if s < 0:
                        break
                    if values:
                        out.append((self._key(s), self._value(s)))
                    self.v.st.counters.expirations += 1
                    self._remove(s, None, None, None, False)
                    taken += 1
                    kill_point(KP_EXPIRE_BATCH)
            finally:
                self._release()
            total += taken
            if taken < EXPIRE_BATCH:
                break
        if values:
            return [(decode(k), decode(val)) for k, val in out]
        return total

    def expire(self):
        """Remove every expired entry; return them as (key, value), earliest deadline first."""
        return self._expire_batches(True)

    def purge(self):
        """Remove every expired entry and return how many."""
        return self._expire_batches(False)

    def entries(self):
        """Live entries as (key, value, remaining seconds), most recently used first."""
        cdef double now = self._user_time()
        cdef list out = []
        cdef int32_t s, a, b
        cdef double deadline
        self._acquire()
        try:
            now = self._clock(now)
            a, b = self.v.st.head[0], self.v.st.head[1]
            while True:
                s = mru_next(&self.v, &a, &b)
                if s < 0:
                    break
                deadline = self.v.slots[s].deadline
                if deadline > now:
                    out.append((self._key(s), self._value(s), deadline + self.clock_slack - now))
        finally:
            self._release()
        return [(decode(k), decode(val), rem) for k, val, rem in out]

    def keys(self):
        return [k for k, _, _ in self.entries()]

    def values(self):
        return [val for _, val, _ in self.entries()]

    def items(self):
        return [(k, val) for k, val, _ in self.entries()]

    def __iter__(self):
        return iter(self.keys())

    def __len__(self):
        cdef double now = self._user_time()
        cdef SlotsState* st = self.v.st
        self._acquire()
        try:
            if st.heap_len == 0 and st.lanes_used == 0:
                return st.count
            return st.count - expiry_count(&self.v, self._clock(now))
        finally:
            self._release()

    def clear(self):
        """Remove every entry."""
        cdef double now = self._user_time()
        cdef SlotsState* st = self.v.st
        cdef int32_t s, expired
        cdef int64_t b
        self._acquire()
        try:
            now = self._clock(now)
            expired = expiry_count(&self.v, now) if st.count else 0
            st.counters.expirations += expired
            st.counters.deletions += st.count - expired
            for s in range(st.capacity):
                if self.records[s]:
                    ms_store_u64(&self.records[s], 0)
                    kill_point(KP_CLEAR_RECORDS)
            kill_point(KP_CLEAR_RESET)
            slots_reset(&self.v)
            self.sh.block_free_head = NIL
            for b in range(self.nblocks - 1, -1, -1):
                self.block_next[b] = self.sh.block_free_head
                self.sh.block_free_head = <int32_t>b
            self.sh.blocks_free = self.nblocks
        finally:
            self._release()

    # -- statistics ----------------------------------------------------------------------

    def stats(self):
        """Host-wide counters since creation or reset_stats(), live length, size and capacity, recoveries."""
        cdef double now = self._user_time()
        cdef Counters c
        cdef SlotsState* st = self.v.st
        cdef int32_t length
        self._acquire()
        try:
            c = st.counters
            length = st.count - expiry_count(&self.v, self._clock(now))
            recoveries = self.sh.recoveries
            stale = self.sh.stale
        finally:
            self._release()
        return SharedStats(c.hits, c.misses, c.expired, stale, c.writes, c.evictions, c.evicted_unread,
                           c.expirations, c.deletions, c.rejected, length, st.size, self.g.capacity, recoveries)

    def count_stale(self):
        """Count one expired session served by a stale read (host-wide)."""
        self._acquire()
        self.sh.stale += 1
        self._release()

    def reset_stats(self):
        """Zero the counters (for every process: they live in the segment)."""
        self._acquire()
        memset(&self.v.st.counters, 0, sizeof(Counters))
        self.sh.recoveries = 0
        self.sh.stale = 0
        self._release()

    def arena_use(self):
        """(bytes of keys and values held, blocks in use, blocks in all): how full the arena is."""
        cdef int32_t s
        cdef int64_t held = 0
        self._acquire()
        try:
            for s in range(self.v.st.capacity):
                if self.records[s]:
                    held += self._key_len(s) + record_length(self.records[s])
            used = self.nblocks - self.sh.blocks_free
        finally:
            self._release()
        return held, used, self.nblocks

    # -- recovery and invariants ------------------------------------------------------------

    cdef bint _chain_mark(self, uint64_t w, bint check) noexcept nogil:
        # Mark the blocks of the record's chain; False (nothing left marked) if the
        # record is malformed or (check) shares a block with a marked chain.
        cdef int32_t first = record_first(w), b
        cdef int64_t n, i, key_len
        if first < 0 or first >= self.nblocks or record_kind(w) > KIND_UTF8 or \
                record_length(w) > self.max_session_bytes:
            return False
        key_len = (<uint32_t*>(self._block(first) + 8))[0]
        if key_len == 0 or key_len > MAX_KEY_BYTES:
            return False
        n = blocks_for(key_len, record_length(w))
        b = first
        for i in range(n):
            if b < 0 or b >= self.nblocks or (check and self.marks[b >> 3] & (1 << (b & 7))):
                self._chain_unmark(first, i)
                return False
            self.marks[b >> 3] |= <uint8_t>(1 << (b & 7))
            b = self.block_next[b]
        return True

    cdef void _chain_unmark(self, int32_t b, int64_t n) noexcept nogil:
        cdef int64_t _i
        for _i in range(n):
            self.marks[b >> 3] &= <uint8_t>~(1 << (b & 7))
            b = self.block_next[b]

    cdef void _recover(self) noexcept nogil:
        # Rebuild everything derived from the records: slots' hash32 and deadline,
        # the table, recency lists, expiry index and free slots (slots_rebuild),
        # and the free blocks (those no record's chain holds).
        cdef SlotsState* st = self.v.st
        cdef int32_t s, first
        cdef int64_t b
        cdef uint64_t w
        memset(self.marks, 0, (self.nblocks + 7) // 8)
        for s in range(st.capacity):
            w = self.records[s]
            if w and not self._chain_mark(w, True):
                ms_store_u64(&self.records[s], 0)       # malformed: cannot happen by the protocol
                w = 0
            if w == 0:
                self.v.slots[s].stamp = SLOT_FREE
                continue
            first = record_first(w)
            self.v.slots[s].stamp &= ~SLOT_FREE
            self.v.slots[s].deadline = (<double*>self._block(first))[0]
            self.v.slots[s].hash32 = self._hash(self._block(first) + CHAIN_HEADER, self._key_len(s)) \
                if self._key_len(s) <= BLOCK - CHAIN_HEADER else self._hash_chain(s)
        kill_point(KP_RECOVER_RECORDS)
        slots_rebuild(&self.v, self.v.heap_slot)
        kill_point(KP_RECOVER_REBUILT)
        self.sh.block_free_head = NIL
        self.sh.blocks_free = 0
        for b in range(self.nblocks - 1, -1, -1):
            if not (self.marks[b >> 3] & (1 << (b & 7))):
                self.block_next[b] = self.sh.block_free_head
                self.sh.block_free_head = <int32_t>b
                self.sh.blocks_free += 1

    cdef uint32_t _hash_chain(self, int32_t s) noexcept nogil:
        # hash32 of a key that spans blocks (copied out to a stack buffer first).
        cdef char buf[MAX_KEY_BYTES]
        cdef int64_t n = self._key_len(s)
        self._chain_read(record_first(self.records[s]), CHAIN_HEADER, buf, n)
        return self._hash(buf, n)

    def check_invariants(self):
        """Raise AssertionError unless every structure agrees with the records (and with each other)."""
        cdef const char* broken = NULL
        cdef SlotsState* st = self.v.st
        cdef int32_t s, b, free_blocks = 0
        cdef int64_t used = 0
        cdef uint64_t w
        cdef str problem = None
        self._acquire()
        try:
            broken = slots_check(&self.v)
            if broken != NULL:
                problem = broken.decode()
            else:
                memset(self.marks, 0, (self.nblocks + 7) // 8)
                for s in range(st.capacity):
                    w = self.records[s]
                    if (w == 0) != bool(self.v.slots[s].stamp & SLOT_FREE):
                        problem = f"slot {s}: record and free mark disagree"
                        break
                    if w == 0:
                        continue
                    if not self._chain_mark(w, True):
                        problem = f"slot {s}: malformed or shared chain"
                        break
                    used += blocks_for(self._key_len(s), record_length(w))
                    if self.v.slots[s].deadline != self._deadline_at(s)[0]:
                        problem = f"slot {s}: deadline differs from its chain's"
                        break
                    if self.v.slots[s].hash32 != self._rehash(s):
                        problem = f"slot {s}: hash differs from its key's"
                        break
                    if self._find_slot_key(s) != s:
                        problem = f"slot {s}: its key finds another slot"
                        break
                if problem is None:
                    b = self.sh.block_free_head
                    while b >= 0:
                        if free_blocks > self.nblocks or self.marks[b >> 3] & (1 << (b & 7)):
                            problem = "the free block list holds a used block or has a cycle"
                            break
                        free_blocks += 1
                        b = self.block_next[b]
                if problem is None and (free_blocks != self.sh.blocks_free or
                                        used + free_blocks != self.nblocks):
                    problem = (f"blocks leaked: {used} used + {free_blocks} free "
                               f"(counted {self.sh.blocks_free}) != {self.nblocks}")
        finally:
            self._release()
        if problem is not None:
            raise AssertionError(problem)

    cdef uint32_t _rehash(self, int32_t s) noexcept nogil:
        if self._key_len(s) <= BLOCK - CHAIN_HEADER:
            return self._hash(self._block(record_first(self.records[s])) + CHAIN_HEADER, self._key_len(s))
        return self._hash_chain(s)

    cdef int32_t _find_slot_key(self, int32_t s) noexcept nogil:
        cdef char buf[MAX_KEY_BYTES]
        cdef int64_t n = self._key_len(s)
        self._chain_read(record_first(self.records[s]), CHAIN_HEADER, buf, n)
        return self._find(buf, n, self._hash(buf, n))


cdef inline object decode(object o):
    if type(o) is Utf8:
        return (<Utf8>o).decode()
    return o


cdef inline const char* key_pointer(object held, Py_ssize_t* n) except? NULL:
    # The bytes _key_held found: NULL for None.
    if held is None:
        return NULL
    if type(held) is bytes:
        n[0] = PyBytes_GET_SIZE(held)
        return PyBytes_AS_STRING(held)
    return PyUnicode_AsUTF8AndSize(held, n)


cdef object decode_triples(list removed):
    return [(decode(k), decode(val), reason) for k, val, reason in removed]
