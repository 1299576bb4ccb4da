# cython: language_level=3, freethreading_compatible=True, embedsignature=True
# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The compiled core: ``LRUCache`` over C arrays (see ``_lru_py.py`` for the twin).

Every entry lives in a numbered *slot*::

     slot:           0      1      2      3    ...  capacity-1
    slot_keys[]    | k0   | k1   | None | k3   |    Python lists: the GC sees
    slot_values[]  | v0   | v1   | None | v3   |    keys and values there
    slots[]        | Slot | Slot | free | Slot |    one 24-byte C struct a slot:
                     deadline   monotonic seconds, inf = never expires
                     hash32     low 32 bits of hash(key), for probing and rehashing
                     prev/next  recency list, head (MRU) <-> ... <-> tail (LRU);
                                free slots are chained through next from free_head
                     heap_pos   index in the heap; NOT_FILED; IN_LANE
                     lane_prev/lane_next  links of the expiry lane
    sizes[]        NULL while every entry has size 1, else one Py_ssize_t a slot

    table[]        open addressing, linear probing over 1.5 x capacity buckets, each
                   {slot (-1 = empty), hash32}: probing and shifting never touch
                   slots[]; deletions shift back, so there are no tombstones
    expiry lane    lane_head -> ... -> lane_tail: the slots whose lifetime is
                   lane_lifetime, in deadline order (the clock only moves forward,
                   so they arrive in order): O(1) to file, unfile and expire.
    heap_slot[] / heap_key[]
                   4-ary min-heap of the other slots with a finite deadline; heap_key is a
                   lower bound of the slot's deadline (a deadline that moves later is
                   re-filed lazily when its old key reaches the top), so expire()
                   costs O((expired + re-filed) log n) and nothing when nothing expired.

User code (key __hash__/__eq__, the timer, getsizeof, values' __del__) never
runs while the arrays are half-updated: hashes, times and sizes are computed
before the critical section; __eq__ runs only while probing, before anything
changes, with ``busy`` set so that re-entry raises RuntimeError; removed keys
and values are collected and released after the section ends.
"""

cimport cython
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.object cimport PyObject
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.pythread cimport PyThread_get_thread_ident
from cpython.object cimport Py_EQ, PyObject_Hash, PyObject_RichCompareBool
from libc.math cimport NAN
from cpython.time cimport monotonic
from libc.stdint cimport int32_t, uint32_t, uint64_t
from libc.string cimport memset

import numbers
from datetime import timedelta
from types import GenericAlias

cdef extern from *:
    long CYTHON_HEX_VERSION

cdef extern from *:
    """
    #include <time.h>
    /* Linux's coarse monotonic clock: same origin as CLOCK_MONOTONIC, a few
       ms resolution, a plain vDSO read; -1 where there is none. */
    static double memorystore_coarse_clock(void) {
    #if defined(__linux__) && defined(CLOCK_MONOTONIC_COARSE)
        struct timespec ts;
        if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) == 0)
            return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    #endif
        return -1.0;
    }
    /* Its resolution (the tick: 1-10 ms), or 0 where there is no coarse clock. */
    static double memorystore_coarse_resolution(void) {
    #if defined(__linux__) && defined(CLOCK_MONOTONIC_COARSE)
        struct timespec ts;
        if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) == 0 && clock_getres(CLOCK_MONOTONIC_COARSE, &ts) == 0)
            return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    #endif
        return 0.0;
    }
    """
    double memorystore_coarse_clock() noexcept nogil
    double memorystore_coarse_resolution() noexcept nogil

cdef extern from *:
    """
    #ifdef _WIN32
    #include <windows.h>
    static void memorystore_yield(void) { SwitchToThread(); }
    #else
    #include <sched.h>
    static void memorystore_yield(void) { sched_yield(); }
    #endif
    """
    void memorystore_yield() noexcept nogil

cdef extern from *:
    """
    /* Whether dropping the cache's reference to o (borrowed from a slot list)
       can run no user code: its type has no finalizer to call, or, with a GIL,
       someone else still holds o and nothing can drop that before the
       operation ends (free-threaded refcounts are split: never assumed). */
    static int memorystore_releasable_now(PyObject *o) {
        if (o == Py_None || PyUnicode_CheckExact(o) || PyBytes_CheckExact(o) || PyLong_CheckExact(o)
                || PyFloat_CheckExact(o) || PyBool_Check(o))
            return 1;
    #ifdef Py_GIL_DISABLED
        return 0;
    #else
        return Py_REFCNT(o) > 1;
    #endif
    }
    """
    bint releasable_now "memorystore_releasable_now"(PyObject* o) noexcept


# The default clock: the coarse monotonic clock where there is one, else CPython's.
cdef inline double default_clock() noexcept nogil:
    cdef double t = memorystore_coarse_clock()
    return t if t >= 0 else monotonic()

# A coarse reading is up to one tick behind the true time.  Deadlines taken from it are set that
# much earlier, so that an entry is never seen once its ttl has passed on time.monotonic() (a
# `set(ttl=1); sleep(1); get()` misses, as with the pure core); it may leave up to two ticks early.
# Remaining times add it back, so re-setting an entry with its remaining ttl does not shorten it.
DEFAULT_CLOCK_SLACK = memorystore_coarse_resolution()
cdef double default_clock_slack = DEFAULT_CLOCK_SLACK

CYTHON_VERSION = "%d.%d.%d" % ((CYTHON_HEX_VERSION >> 24) & 0xFF, (CYTHON_HEX_VERSION >> 16) & 0xFF,
                               (CYTHON_HEX_VERSION >> 8) & 0xFF)

__all__ = ["LRUCache", "CYTHON_VERSION"]

cdef double INF = float("inf")
cdef object MISSING = object()
cdef object REFUSED = object()      # _put's answer when only_if_absent found a live entry
cdef tuple NO_REMOVALS = ()
cdef str SET = "set"
cdef str EXPIRE = "expire"
cdef str EVICT = "evict"

cdef Py_ssize_t MIN_CAPACITY = 8
cdef Py_ssize_t MAX_CAPACITY = 0x3FFFFFFF
# Sizes above this count as this; a bound above it counts as SIZE_CAP - 1, so
# any such entry is "bigger than maxsize" and sums cannot overflow.
cdef Py_ssize_t SIZE_CAP = <Py_ssize_t>1 << 50

ctypedef struct Bucket:
    int32_t slot        # -1: empty
    uint32_t hash32

ctypedef struct Slot:
    double deadline
    uint32_t hash32
    int32_t prev
    int32_t next
    int32_t heap_pos
    int32_t lane_prev
    int32_t lane_next

cdef enum:                  # what _expire_into hands back for each expired entry
    TRIPLES = 0
    PAIRS = 1
    RELEASED = 2

cdef enum:
    NOT_FILED = -1      # Slot.heap_pos of a slot that never expires (or is free)
    IN_LANE = -2        # Slot.heap_pos of a slot filed in the expiry lane

cdef int HEAP_ARITY = 4


# -- argument checks (same messages as _lru_py) ------------------------------

cpdef double to_seconds(object value, str what="ttl") except? -1.0:
    """A duration (int, float or timedelta) as float seconds; rejects bool, NaN, non-numbers."""
    cdef double seconds
    if type(value) is float:                    # fast paths: no ABC check
        seconds = <double>value
        if seconds != seconds:
            raise ValueError(f"{what} must not be NaN")
        return seconds
    if type(value) is int and -9007199254740992 <= <object>value <= 9007199254740992:
        return <double>value
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be a number of seconds or a timedelta, not {type(value).__name__}")
    try:
        seconds = float(value)
    except OverflowError:
        raise ValueError(f"{what} is too large") from None
    if seconds != seconds:
        raise ValueError(f"{what} must not be NaN")
    return seconds


cdef object check_maxsize(object maxsize):
    if maxsize is None:
        return None
    if isinstance(maxsize, bool) or not isinstance(maxsize, int):
        raise TypeError(f"maxsize must be an int or None, not {type(maxsize).__name__}")
    if maxsize < 1:
        raise ValueError("maxsize must be >= 1 or None")
    return maxsize


cdef Py_ssize_t check_size(object size) except -1:
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"size must be an int, not {type(size).__name__}")
    if size < 0:
        raise ValueError("size must be >= 0")
    return min(size, SIZE_CAP)


cdef object check_default_ttl(object ttl):
    if ttl is None:
        return None
    cdef double seconds = to_seconds(ttl)
    if seconds <= 0:
        raise ValueError("ttl must be > 0 or None")
    return seconds


# Home bucket of a 32-bit hash in a table of n buckets: a Fibonacci scramble
# (keeps patterned ints apart), then multiply-shift into [0, n).
cdef inline Py_ssize_t home_bucket(uint32_t h, Py_ssize_t n) noexcept nogil:
    cdef uint32_t scrambled = h * <uint32_t>2654435769u
    return <Py_ssize_t>((<uint64_t>scrambled * <uint64_t>n) >> 32)


# Smallest power of two >= n (n >= 1).
cdef inline Py_ssize_t pow2_at_least(Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t p = 1
    while p < n:
        p <<= 1
    return p


@cython.final
@cython.no_gc_clear
cdef class LRUCache:
    """A bounded, TTL-aware LRU mapping; expired entries are invisible.

    ``maxsize`` bounds the total size (``getsizeof(value)`` per entry, else 1);
    ``ttl`` is the default lifetime in seconds (``None``: no expiry); ``timer``
    returns monotonic seconds (default: the C monotonic clock).
    """

    cdef:
        # configuration
        object _maxsize_obj, _ttl_obj, _getsizeof, _timer
        Py_ssize_t maxsize_c            # -1 = unbounded
        double default_lifetime         # INF when no default ttl
        double clock_slack              # default_clock_slack with the C clock, 0 with a user timer
        # slots
        list slot_keys, slot_values
        Slot* slots
        Py_ssize_t* sizes               # NULL: every entry has size 1
        Py_ssize_t capacity, count, currsize_c
        int32_t head, tail, free_head   # -1 = none
        # key index
        Bucket* table
        Py_ssize_t table_size
        # expiry index: the lane, then the heap
        int32_t lane_head, lane_tail
        double lane_lifetime            # NAN until an entry is filed
        int32_t* heap_slot
        double* heap_key
        Py_ssize_t heap_len, heap_capacity
        # re-entry guard: set while a key's __eq__ runs, by busy_owner's thread
        bint busy
        unsigned long busy_owner
        object __weakref__

    __class_getitem__ = classmethod(GenericAlias)

    def __cinit__(self):
        self.head = self.tail = self.free_head = -1
        self.lane_head = self.lane_tail = -1
        self.lane_lifetime = NAN
        self.maxsize_c = -1
        self.default_lifetime = INF
        self.slot_keys = []
        self.slot_values = []

    def __init__(self, maxsize=None, *, ttl=None, getsizeof=None, timer=None):
        if getsizeof is not None and not callable(getsizeof):
            raise TypeError("getsizeof must be callable or None")
        if timer is not None and not callable(timer):
            raise TypeError("timer must be callable or None")
        maxsize = check_maxsize(maxsize)
        ttl = check_default_ttl(ttl)
        if self.count or self.capacity:
            raise TypeError("LRUCache.__init__() may not be called on a cache in use")
        self._maxsize_obj = maxsize
        self._ttl_obj = ttl
        self.maxsize_c = -1 if maxsize is None else min(<object>maxsize, SIZE_CAP - 1)
        self.default_lifetime = INF if ttl is None else <double>ttl
        self._getsizeof = getsizeof
        self._timer = timer
        self.clock_slack = default_clock_slack if timer is None else 0.0

    def __dealloc__(self):
        self._free_arrays()

    # -- properties ---------------------------------------------------------

    @property
    def maxsize(self):
        return self._maxsize_obj

    @property
    def ttl(self):
        return self._ttl_obj

    @property
    def currsize(self):
        """Total size of the entries held, expired ones not yet removed included."""
        return self.currsize_c

    def now(self):
        """The cache's clock, in seconds."""
        return self._clock(self._user_time())

    def __repr__(self):
        return f"LRUCache(maxsize={self._maxsize_obj!r}, ttl={self._ttl_obj!r}, currsize={self.currsize_c})"

    def __reduce_ex__(self, protocol):
        raise TypeError("cannot pickle or copy LRUCache objects")

    # -- clock --------------------------------------------------------------

    cdef inline double _user_time(self) except? -1.0:
        # The user timer's reading, taken before any structure is touched; NAN with the C clock.
        if self._timer is None:
            return NAN
        return float(self._timer())

    # The time of this operation: the user timer's reading, or the C monotonic clock read now.
    cdef inline double _clock(self, double user_time) noexcept nogil:
        return default_clock() if user_time != user_time else user_time

    # The deadline of an entry given `lifetime` at `now` (see default_clock_slack); INF stays INF.
    cdef inline double _deadline(self, double now, double lifetime) noexcept nogil:
        return now + lifetime - self.clock_slack

    # -- memory -------------------------------------------------------------

    cdef void _free_arrays(self) noexcept:
        # Give every C array back; the cache then has capacity 0.
        PyMem_Free(self.slots)
        PyMem_Free(self.sizes)
        PyMem_Free(self.table)
        PyMem_Free(self.heap_slot)
        PyMem_Free(self.heap_key)
        self.slots = NULL
        self.sizes = NULL
        self.table = NULL
        self.heap_slot = NULL
        self.heap_key = NULL
        self.capacity = self.count = self.currsize_c = self.heap_len = self.heap_capacity = 0
        self.head = self.tail = self.free_head = -1
        self.lane_head = self.lane_tail = -1
        self.table_size = 0

    cdef int _resize(self, Py_ssize_t new_capacity) except -1:
        # Move the live entries into arrays of new_capacity slots, renumbered
        # LRU..MRU as 0..count-1; the table, the lane and the heap are rebuilt.
        cdef Py_ssize_t table_size = new_capacity + new_capacity // 2 + 1
        cdef Slot* slots = <Slot*>PyMem_Malloc(new_capacity * sizeof(Slot))
        cdef Py_ssize_t* sizes = NULL
        cdef Bucket* table = <Bucket*>PyMem_Malloc(table_size * sizeof(Bucket))
        cdef int32_t* renumbered = <int32_t*>PyMem_Malloc(max(self.capacity, 1) * sizeof(int32_t))
        if self.sizes != NULL:
            sizes = <Py_ssize_t*>PyMem_Malloc(new_capacity * sizeof(Py_ssize_t))
        if slots == NULL or table == NULL or renumbered == NULL or (self.sizes != NULL and sizes == NULL):
            PyMem_Free(slots)
            PyMem_Free(sizes)
            PyMem_Free(table)
            PyMem_Free(renumbered)
            raise MemoryError()
        cdef list keys = [None] * new_capacity
        cdef list values = [None] * new_capacity
        cdef Py_ssize_t n = 0, i
        cdef int32_t s = self.tail
        cdef int32_t lane = self.lane_head
        cdef Py_ssize_t total = self.currsize_c
        cdef double lane_lifetime = self.lane_lifetime
        # copy LRU -> MRU into slots 0..count-1, linked in that order
        while s >= 0:
            keys[n] = self.slot_keys[s]
            values[n] = self.slot_values[s]
            slots[n] = self.slots[s]
            slots[n].prev = <int32_t>(n + 1)      # towards the head (MRU)
            slots[n].next = <int32_t>(n - 1)      # towards the tail (LRU)
            if sizes != NULL:
                sizes[n] = self.sizes[s]
            renumbered[s] = <int32_t>n
            n += 1
            s = self.slots[s].prev
        if n:
            slots[n - 1].prev = -1
        # the lane keeps its deadline order, under the new numbers
        s = -1
        while lane >= 0:
            i = renumbered[lane]
            slots[i].lane_prev = s
            slots[i].lane_next = -1
            if s >= 0:
                slots[s].lane_next = <int32_t>i
            s = <int32_t>i
            lane = self.slots[lane].lane_next
        lane = renumbered[self.lane_head] if self.lane_head >= 0 else -1
        PyMem_Free(renumbered)
        for i in range(n, new_capacity):          # the free list
            slots[i].next = <int32_t>(i + 1) if i + 1 < new_capacity else -1
            slots[i].heap_pos = NOT_FILED
        self._free_arrays()
        self.slot_keys, self.slot_values = keys, values
        self.slots, self.sizes, self.table = slots, sizes, table
        self.capacity = new_capacity
        self.count = n
        self.currsize_c = total
        self.head = <int32_t>(n - 1) if n else -1
        self.tail = 0 if n else -1
        self.free_head = <int32_t>n if n < new_capacity else -1
        self.lane_head, self.lane_tail, self.lane_lifetime = lane, s, lane_lifetime
        self.table_size = table_size
        memset(table, 0xFF, table_size * sizeof(Bucket))
        for i in range(n):
            self._table_insert(<int32_t>i)
            if slots[i].heap_pos >= 0:
                slots[i].heap_pos = NOT_FILED
                self._heap_push(<int32_t>i, slots[i].deadline, False)
        i = (self.heap_len - 2) // HEAP_ARITY if self.heap_len > 1 else -1
        while i >= 0:
            self._sift_down(i)
            i -= 1
        return 0

    cdef int _grow(self) except -1:
        # Make room for one more slot: double the capacity (capped by maxsize while sizes are all 1).
        cdef Py_ssize_t new_capacity = self.capacity * 2 if self.capacity else MIN_CAPACITY
        if self.sizes == NULL and self.maxsize_c > 0 and new_capacity > self.maxsize_c:
            new_capacity = max(self.maxsize_c, self.capacity + 1)
        if new_capacity > MAX_CAPACITY:
            if self.capacity >= MAX_CAPACITY:
                raise MemoryError("LRUCache is full")
            new_capacity = MAX_CAPACITY
        return self._resize(new_capacity)

    cdef int _maybe_shrink(self) except -1:
        # After removals: give memory back once the live count is far below capacity.
        if self.count == 0:
            if self.capacity > MIN_CAPACITY:
                self._free_arrays()
                self.slot_keys, self.slot_values = [], []
        elif self.capacity > MIN_CAPACITY and self.count * 4 < self.capacity:
            self._resize(max(MIN_CAPACITY, pow2_at_least(2 * self.count)))
        return 0

    cdef int _use_sizes(self) except -1:
        # Switch from "every size is 1" to a sizes array.
        cdef Py_ssize_t i
        if self.sizes != NULL or self.capacity == 0:
            return 0
        self.sizes = <Py_ssize_t*>PyMem_Malloc(self.capacity * sizeof(Py_ssize_t))
        if self.sizes == NULL:
            raise MemoryError()
        for i in range(self.capacity):
            self.sizes[i] = 1
        return 0

    # Size of the entry in slot s.
    cdef inline Py_ssize_t _size(self, int32_t s) noexcept:
        return 1 if self.sizes == NULL else self.sizes[s]

    # -- key index ----------------------------------------------------------

    cdef Py_ssize_t _find(self, object key, uint32_t h) except -2:
        # Slot holding key, or -1.  May run key.__eq__, with busy set; nothing has changed yet.
        cdef Py_ssize_t i, s
        cdef int equal
        cdef object stored
        if self.busy:
            self._wait_not_busy()
        if PyList_GET_SIZE(self.slot_keys) != self.capacity or PyList_GET_SIZE(self.slot_values) != self.capacity:
            raise RuntimeError("LRUCache was cleared by the garbage collector")
        if self.capacity == 0:
            return -1
        i = home_bucket(h, self.table_size)
        while True:
            s = self.table[i].slot
            if s < 0:
                return -1
            if self.table[i].hash32 == h:
                stored = self.slot_keys[s]
                if stored is key:
                    return s
                self.busy = True
                self.busy_owner = PyThread_get_thread_ident()
                try:
                    equal = PyObject_RichCompareBool(stored, key, Py_EQ)
                finally:
                    self.busy = False
                if equal:
                    return s
            i += 1
            if i == self.table_size:
                i = 0

    cdef int _wait_not_busy(self) except -1:
        # Another thread is inside a key's __eq__: wait for it (GIL released);
        # this thread is (re-entry from __eq__): refuse.
        cdef unsigned long me = PyThread_get_thread_ident()
        while self.busy:
            if self.busy_owner == me:
                raise RuntimeError("LRUCache re-entered while an operation was in progress (from a key's __eq__?)")
            with nogil:
                memorystore_yield()
        return 0

    cdef inline void _table_insert(self, int32_t s) noexcept:
        # File slot s in the table (its key is known to be absent).
        cdef uint32_t h = self.slots[s].hash32
        cdef Py_ssize_t i = home_bucket(h, self.table_size)
        while self.table[i].slot >= 0:
            i += 1
            if i == self.table_size:
                i = 0
        self.table[i].slot = s
        self.table[i].hash32 = h

    cdef void _table_remove(self, int32_t s) noexcept:
        # Take slot s out of the table, shifting later probes back into the hole.
        cdef Py_ssize_t n = self.table_size
        cdef Py_ssize_t hole = home_bucket(self.slots[s].hash32, n)
        cdef Py_ssize_t j, home
        while self.table[hole].slot != s:
            hole += 1
            if hole == n:
                hole = 0
        j = hole
        while True:
            j += 1
            if j == n:
                j = 0
            if self.table[j].slot < 0:
                break
            home = home_bucket(self.table[j].hash32, n)
            # the entry at j stays when its home lies cyclically in (hole, j]
            if (hole < j and hole < home <= j) or (hole > j and (home > hole or home <= j)):
                continue
            self.table[hole] = self.table[j]
            hole = j
        self.table[hole].slot = -1

    # -- recency list -------------------------------------------------------

    cdef inline void _link_head(self, int32_t s) noexcept:
        # Put slot s at the head (most recently used).
        self.slots[s].prev = -1
        self.slots[s].next = self.head
        if self.head >= 0:
            self.slots[self.head].prev = s
        else:
            self.tail = s
        self.head = s

    cdef inline void _unlink(self, int32_t s) noexcept:
        # Take slot s out of the recency list.
        cdef int32_t p = self.slots[s].prev
        cdef int32_t n = self.slots[s].next
        if p >= 0:
            self.slots[p].next = n
        else:
            self.head = n
        if n >= 0:
            self.slots[n].prev = p
        else:
            self.tail = p

    cdef inline void _move_to_head(self, int32_t s) noexcept:
        # Mark slot s most recently used.
        if self.head != s:
            self._unlink(s)
            self._link_head(s)

    # -- expiry heap --------------------------------------------------------

    cdef inline void _heap_place(self, Py_ssize_t i, int32_t s, double key) noexcept:
        # Put slot s with key at heap index i.
        self.heap_slot[i] = s
        self.heap_key[i] = key
        self.slots[s].heap_pos = <int32_t>i

    cdef void _sift_up(self, Py_ssize_t i) noexcept:
        # Restore heap order upwards from i.
        cdef int32_t s = self.heap_slot[i]
        cdef double key = self.heap_key[i]
        cdef Py_ssize_t parent
        while i > 0:
            parent = (i - 1) // HEAP_ARITY
            if self.heap_key[parent] <= key:
                break
            self._heap_place(i, self.heap_slot[parent], self.heap_key[parent])
            i = parent
        self._heap_place(i, s, key)

    cdef void _sift_down(self, Py_ssize_t i) noexcept:
        # Restore heap order downwards from i.
        cdef int32_t s = self.heap_slot[i]
        cdef double key = self.heap_key[i]
        cdef Py_ssize_t child, best, last, n = self.heap_len
        while True:
            child = HEAP_ARITY * i + 1
            if child >= n:
                break
            best = child
            last = min(child + HEAP_ARITY, n)
            child += 1
            while child < last:
                if self.heap_key[child] < self.heap_key[best]:
                    best = child
                child += 1
            if self.heap_key[best] >= key:
                break
            self._heap_place(i, self.heap_slot[best], self.heap_key[best])
            i = best
        self._heap_place(i, s, key)

    cdef int _heap_push(self, int32_t s, double key, bint sift) except -1:
        # File slot s in the heap under key (growing the heap arrays as needed).
        cdef Py_ssize_t new_capacity
        cdef int32_t* heap_slot
        cdef double* heap_key
        if self.heap_len == self.heap_capacity:
            new_capacity = max(MIN_CAPACITY, 2 * self.heap_capacity)
            heap_slot = <int32_t*>PyMem_Realloc(self.heap_slot, new_capacity * sizeof(int32_t))
            if heap_slot == NULL:
                raise MemoryError()
            self.heap_slot = heap_slot
            heap_key = <double*>PyMem_Realloc(self.heap_key, new_capacity * sizeof(double))
            if heap_key == NULL:
                raise MemoryError()
            self.heap_key = heap_key
            self.heap_capacity = new_capacity
        self._heap_place(self.heap_len, s, key)
        self.heap_len += 1
        if sift:
            self._sift_up(self.heap_len - 1)
        return 0

    cdef void _heap_remove(self, int32_t s) noexcept:
        # Take slot s out of the heap.
        cdef Py_ssize_t i = self.slots[s].heap_pos
        cdef Py_ssize_t last = self.heap_len - 1
        self.slots[s].heap_pos = NOT_FILED
        self.heap_len = last
        if i == last:
            return
        self._heap_place(i, self.heap_slot[last], self.heap_key[last])
        if i > 0 and self.heap_key[i] < self.heap_key[(i - 1) // HEAP_ARITY]:
            self._sift_up(i)
        else:
            self._sift_down(i)

    # -- expiry lane --------------------------------------------------------

    cdef inline void _lane_append(self, int32_t s) noexcept:
        # File slot s at the end of the lane (its deadline is the latest there).
        self.slots[s].heap_pos = IN_LANE
        self.slots[s].lane_prev = self.lane_tail
        self.slots[s].lane_next = -1
        if self.lane_tail >= 0:
            self.slots[self.lane_tail].lane_next = s
        else:
            self.lane_head = s
        self.lane_tail = s

    cdef inline void _lane_remove(self, int32_t s) noexcept:
        # Take slot s out of the lane.
        cdef int32_t p = self.slots[s].lane_prev
        cdef int32_t n = self.slots[s].lane_next
        if p >= 0:
            self.slots[p].lane_next = n
        else:
            self.lane_head = n
        if n >= 0:
            self.slots[n].lane_prev = p
        else:
            self.lane_tail = p
        self.slots[s].heap_pos = NOT_FILED

    cdef inline void _unfile(self, int32_t s) noexcept:
        # Take slot s out of the expiry index, wherever it is filed.
        if self.slots[s].heap_pos == IN_LANE:
            self._lane_remove(s)
        elif self.slots[s].heap_pos >= 0:
            self._heap_remove(s)

    cdef int _file_deadline(self, int32_t s, double deadline, double lifetime) except -1:
        # Give slot s a new deadline and file it: in the lane when it has the
        # lane's lifetime and comes last, else in the heap (whose key stays a
        # lower bound of the deadline).
        cdef Py_ssize_t i = self.slots[s].heap_pos
        self.slots[s].deadline = deadline
        if i == IN_LANE:
            self._lane_remove(s)
            i = NOT_FILED
        if deadline == INF:
            if i >= 0:
                self._heap_remove(s)
            return 0
        if self.lane_head < 0 and lifetime > 0 and lifetime != self.lane_lifetime:
            self.lane_lifetime = lifetime           # an empty lane adopts the newest lifetime
        if lifetime == self.lane_lifetime and (self.lane_tail < 0 or self.slots[self.lane_tail].deadline <= deadline):
            if i >= 0:
                self._heap_remove(s)
            self._lane_append(s)
        elif i < 0:
            self._heap_push(s, deadline, True)
        elif deadline < self.heap_key[i]:
            self.heap_key[i] = deadline
            self._sift_up(i)
        return 0

    cdef Py_ssize_t _count_expired(self, double now) noexcept:
        # Entries expired at now: the head of the lane, then a depth-first walk of the heap items keyed <= now.
        cdef Py_ssize_t stack[256]
        cdef Py_ssize_t top = 1, count = 0, i, child, end
        cdef int32_t s = self.lane_head
        while s >= 0 and self.slots[s].deadline <= now:
            count += 1
            s = self.slots[s].lane_next
        if self.heap_len == 0 or self.heap_key[0] > now:
            return count
        stack[0] = 0
        while top:
            top -= 1
            i = stack[top]
            if self.slots[self.heap_slot[i]].deadline <= now:
                count += 1
            child = HEAP_ARITY * i + 1
            end = min(child + HEAP_ARITY, self.heap_len)
            while child < end:
                if self.heap_key[child] <= now:
                    stack[top] = child
                    top += 1
                child += 1
        return count

    # -- entries ------------------------------------------------------------

    cdef inline bint _is_live(self, Py_ssize_t s, double user_time) noexcept:
        # Whether slot s (or -1) holds an entry that has not expired (the clock is read only if needed).
        if s < 0:
            return False
        return self.slots[s].deadline == INF or self.slots[s].deadline > self._clock(user_time)

    cdef int _new_slot(self, object key, object value, uint32_t h, double deadline, double lifetime,
                       Py_ssize_t size) except -1:
        # Store a new entry (its key is absent) in a free slot, as most recently used.
        cdef int32_t s
        if self.free_head < 0:
            self._grow()
        if size != 1 and self.sizes == NULL:
            self._use_sizes()
        s = self.free_head
        self.free_head = self.slots[s].next
        self.slot_keys[s] = key
        self.slot_values[s] = value
        self.slots[s].hash32 = h
        self.slots[s].heap_pos = NOT_FILED
        if self.sizes != NULL:
            self.sizes[s] = size
        self.count += 1
        self.currsize_c += size
        self._table_insert(s)
        self._link_head(s)
        self._file_deadline(s, deadline, lifetime)
        return 0

    cdef tuple _remove_slot(self, int32_t s, str reason):
        # Take the entry in slot s out of every structure; hand back (key, value, reason).
        cdef object key = self.slot_keys[s]
        cdef object value = self.slot_values[s]
        self._free_slot(s)
        return (key, value, reason)

    cdef int _free_slot(self, int32_t s) except -1:
        # Take the entry in slot s out of every structure and free the slot; its
        # key and value references are dropped (callers hold them first).
        self._table_remove(s)
        self._unlink(s)
        self._unfile(s)
        self.currsize_c -= self._size(s)
        self.count -= 1
        self.slots[s].next = self.free_head
        self.free_head = s
        self.slot_keys[s] = None
        self.slot_values[s] = None
        return 0

    cdef list _drop(self, int32_t s, str reason, list removed, bint collect):
        # Remove slot s.  collect: append (key, value, reason) to removed.  Else
        # release key and value here when that runs no user code, and park them
        # in removed (allocated on demand) otherwise.  Returns removed.
        if collect:
            if removed is None:
                removed = []
            removed.append(self._remove_slot(s, reason))
            return removed
        if not (releasable_now(PyList_GET_ITEM(self.slot_keys, s))
                and releasable_now(PyList_GET_ITEM(self.slot_values, s))):
            if removed is None:
                removed = []
            removed.append(self.slot_keys[s])
            removed.append(self.slot_values[s])
        self._free_slot(s)      # key and value: parked in removed, or safe to release
        return removed

    cdef list _expire_into(self, double now, list removed, int shape):
        # Remove every entry expired at now, earliest deadline first, into
        # removed: TRIPLES (key, value, "expire"), PAIRS (key, value), or
        # RELEASED (nothing, unless releasing could run user code: see _drop;
        # removed may then be None and is allocated on demand).  Returns removed.
        cdef int32_t s
        cdef double lane_deadline, heap_first
        while True:
            lane_deadline = self.slots[self.lane_head].deadline if self.lane_head >= 0 else INF
            heap_first = self.heap_key[0] if self.heap_len else INF
            if lane_deadline <= heap_first:
                if lane_deadline > now:
                    return removed
                s = self.lane_head
            elif heap_first > now:
                return removed
            elif self.slots[self.heap_slot[0]].deadline == heap_first:     # an exact key: expired
                s = self.heap_slot[0]
            else:       # the deadline moved later: re-file it first, to keep the order
                s = self.heap_slot[0]
                self.heap_key[0] = self.slots[s].deadline
                self._sift_down(0)
                continue
            if shape == PAIRS:
                removed.append((self.slot_keys[s], self.slot_values[s]))
                self._free_slot(s)
            elif shape == TRIPLES:
                removed.append(self._remove_slot(s, EXPIRE))
            else:
                removed = self._drop(s, EXPIRE, removed, False)

    cdef list _make_room(self, int32_t keep, double now, list removed, bint collect, Py_ssize_t extra):
        # Bring currsize + extra within maxsize: expired entries first, then least
        # recently used; what leaves goes through _drop.  Returns removed.
        if self._first_deadline() <= now:
            if removed is None:
                removed = []
            self._expire_into(now, removed, TRIPLES)
        while self.currsize_c + extra > self.maxsize_c and self.tail >= 0 and self.tail != keep:
            removed = self._drop(self.tail, EVICT, removed, collect)
        return removed

    cdef inline double _first_deadline(self) noexcept:
        # A lower bound of the earliest deadline in the expiry index (INF when empty).
        cdef double first = self.slots[self.lane_head].deadline if self.lane_head >= 0 else INF
        if self.heap_len and self.heap_key[0] < first:
            return self.heap_key[0]
        return first

    cdef inline double _lifetime(self, object ttl) except? -1.0:
        # The lifetime a set/touch asks for: the default when ttl is None.
        if ttl is None:
            return self.default_lifetime
        return to_seconds(ttl)

    # -- store-facing API ---------------------------------------------------

    def put(self, key, value, ttl=None, size=None, only_if_absent=False):
        """Store ``value`` under ``key``; return what left the cache as (key, value, reason) triples.

        reason ``"set"``: the previous value under key (replaced, or removed
        because ttl <= 0 or the entry exceeds maxsize); ``"expire"``: expired
        entries removed to make room; ``"evict"``: live LRU entries pushed out.
        With ``only_if_absent``, nothing changes and ``None`` is returned when a
        live entry is held under ``key`` (an atomic create-if-absent).
        """
        removed = self._put(key, value, ttl, size, True, only_if_absent)
        if removed is REFUSED:
            return None
        return removed if removed else NO_REMOVALS

    cdef object _put(self, object key, object value, object ttl, object size, bint collect, bint only_if_absent):
        # put(); without collect, what leaves is released as _drop says and None or a list of it returned.
        cdef uint32_t h = <uint32_t>PyObject_Hash(key)
        cdef double lifetime = self._lifetime(ttl)
        cdef Py_ssize_t size_c
        cdef double now, deadline
        cdef Py_ssize_t s
        cdef list removed = None
        cdef str reason
        if size is None:
            size_c = 1 if self._getsizeof is None else check_size(self._getsizeof(value))
        else:
            size_c = check_size(size)
        now = self._user_time()
        with cython.critical_section(self):
            s = self._find(key, h)
            now = self._clock(now)
            if only_if_absent and s >= 0 and self.slots[s].deadline > now:
                return REFUSED
            # deadline <= now: ttl <= 0, or so small that the entry would be born expired
            deadline = self._deadline(now, lifetime)
            if deadline <= now or (self.maxsize_c >= 0 and size_c > self.maxsize_c):
                if s >= 0:
                    removed = self._drop(<int32_t>s, SET if self.slots[s].deadline > now else EXPIRE, removed, collect)
            elif s >= 0:
                if collect:
                    reason = SET if self.slots[s].deadline > now else EXPIRE
                    removed = [(self.slot_keys[s], self.slot_values[s], reason)]
                elif not releasable_now(PyList_GET_ITEM(self.slot_values, s)):
                    removed = [self.slot_values[s]]
                self.slot_values[s] = value      # the old value: in removed, or safe to release
                if size_c != 1 and self.sizes == NULL:
                    self._use_sizes()
                if self.sizes != NULL:
                    self.currsize_c += size_c - self.sizes[s]
                    self.sizes[s] = size_c
                self._move_to_head(<int32_t>s)
                self._file_deadline(<int32_t>s, deadline, lifetime)
                if self.maxsize_c >= 0 and self.currsize_c > self.maxsize_c:
                    removed = self._make_room(<int32_t>s, now, removed, collect, 0)
            else:
                if self.maxsize_c >= 0 and self.currsize_c + size_c > self.maxsize_c:
                    removed = self._make_room(-1, now, removed, collect, size_c)
                self._new_slot(key, value, h, deadline, lifetime, size_c)
        return removed

    def pop_expired(self, key, default=None):
        """If ``key`` is held but expired, remove it and return its value; else ``default``."""
        cdef uint32_t h = <uint32_t>PyObject_Hash(key)
        cdef double now = self._user_time()
        cdef Py_ssize_t s
        cdef tuple entry = None
        with cython.critical_section(self):
            s = self._find(key, h)
            if s >= 0 and not self._is_live(s, now):
                entry = self._remove_slot(<int32_t>s, EXPIRE)
                self._maybe_shrink()
        return default if entry is None else entry[1]

    def remaining(self, key):
        """Seconds left for a live key (``math.inf``: never expires); ``None`` if absent or expired."""
        cdef uint32_t h = <uint32_t>PyObject_Hash(key)
        cdef double now = self._user_time()
        cdef Py_ssize_t s
        with cython.critical_section(self):
            s = self._find(key, h)
            now = self._clock(now)
            if s < 0 or self.slots[s].deadline <= now:
                return None
            return self.slots[s].deadline + self.clock_slack - now

    cdef list _snapshot(self, int what):
        # Live entries MRU first: 0 keys, 1 values, 2 (key, value), 3 (key, value, remaining).
        cdef double now = self._user_time()
        cdef list out = []
        cdef int32_t s
        cdef double deadline
        with cython.critical_section(self):
            if PyList_GET_SIZE(self.slot_keys) != self.capacity or PyList_GET_SIZE(self.slot_values) != self.capacity:
                raise RuntimeError("LRUCache was cleared by the garbage collector")
            now = self._clock(now)
            s = self.head
            while s >= 0:
                deadline = self.slots[s].deadline
                if deadline > now:
                    if what == 0:
                        out.append(self.slot_keys[s])
                    elif what == 1:
                        out.append(self.slot_values[s])
                    elif what == 2:
                        out.append((self.slot_keys[s], self.slot_values[s]))
                    else:
                        out.append((self.slot_keys[s], self.slot_values[s], deadline + self.clock_slack - now))
                s = self.slots[s].next
        return out

    def entries(self):
        """Live entries as (key, value, remaining seconds), most recently used first."""
        return self._snapshot(3)

    def expire(self):
        """Remove every expired entry; return them as (key, value), earliest deadline first."""
        cdef double now = self._user_time()
        cdef list removed = []
        with cython.critical_section(self):
            if self.busy:
                self._wait_not_busy()
            if self.heap_len or self.lane_head >= 0:
                now = self._clock(now)
                self._expire_into(now, removed, PAIRS)
                if removed:
                    self._maybe_shrink()
        return removed

    def purge(self):
        """Remove every expired entry and return how many; unlike expire(), nothing is handed back."""
        cdef double now = self._user_time()
        cdef list parked = None         # entries whose release could run user code: dropped after the section
        cdef Py_ssize_t purged = 0
        with cython.critical_section(self):
            if self.busy:
                self._wait_not_busy()
            if self.heap_len or self.lane_head >= 0:
                now = self._clock(now)
                purged = self.count
                parked = self._expire_into(now, None, RELEASED)
                purged -= self.count
                if purged:
                    self._maybe_shrink()
        del parked
        return purged

    # -- mapping protocol ---------------------------------------------------

    def set(self, key, value, ttl=None):
        """Store with a per-entry ttl (None: the default; math.inf: never; <= 0: remove)."""
        self._put(key, value, ttl, None, False, False)

    def __setitem__(self, key, value):
        self._put(key, value, None, None, False, False)

    cpdef object get(self, object key, object default=None):
        """The live value (now most recently used), else ``default``."""
        cdef uint32_t h = <uint32_t>PyObject_Hash(key)
        cdef double now = self._user_time()
        cdef Py_ssize_t s
        with cython.critical_section(self):
            s = self._find(key, h)
            if not self._is_live(s, now):
                return default
            self._move_to_head(<int32_t>s)
            return self.slot_values[s]

    def __getitem__(self, key):
        value = self.get(key, MISSING)
        if value is MISSING:
            raise KeyError(key)
        return value

    def peek(self, key, default=None):
        """The live value without changing recency, else ``default``."""
        cdef uint32_t h = <uint32_t>PyObject_Hash(key)
        cdef double now = self._user_time()
        cdef Py_ssize_t s
        with cython.critical_section(self):
            s = self._find(key, h)
            return self.slot_values[s] if self._is_live(s, now) else default

    def __contains__(self, key):
        cdef uint32_t h = <uint32_t>PyObject_Hash(key)
        cdef double now = self._user_time()
        with cython.critical_section(self):
            return self._is_live(self._find(key, h), now)

    def touch(self, key, ttl=None):
        """Give a live entry a new deadline and make it most recently used; False if none."""
        cdef uint32_t h = <uint32_t>PyObject_Hash(key)
        cdef double lifetime = self._lifetime(ttl)
        cdef double now = self._user_time()
        cdef Py_ssize_t s
        with cython.critical_section(self):
            s = self._find(key, h)
            now = self._clock(now)
            if s < 0 or self.slots[s].deadline <= now:
                return False
            self._move_to_head(<int32_t>s)
            if lifetime > 0:
                self._file_deadline(<int32_t>s, self._deadline(now, lifetime), lifetime)
            else:
                self._file_deadline(<int32_t>s, now, 0.0)
            return True

    def pop(self, key, default=MISSING):
        """Remove a live entry and return its value; ``default`` or KeyError if there is none."""
        value = self._pop(key)
        if value is MISSING:
            if default is MISSING:
                raise KeyError(key)
            return default
        return value

    def __delitem__(self, key):
        if self._pop(key) is MISSING:
            raise KeyError(key)

    cdef object _pop(self, object key):
        # Remove the live entry under key and return its value; MISSING if there is none.
        cdef uint32_t h = <uint32_t>PyObject_Hash(key)
        cdef double now = self._user_time()
        cdef Py_ssize_t s
        cdef object _stored_key = None, value = MISSING
        with cython.critical_section(self):
            s = self._find(key, h)
            if self._is_live(s, now):
                _stored_key = self.slot_keys[s]     # both released when this returns
                value = self.slot_values[s]
                self._free_slot(<int32_t>s)
                self._maybe_shrink()
        return value

    def __len__(self):
        cdef double now = self._user_time()
        with cython.critical_section(self):
            if self.heap_len == 0 and self.lane_head < 0:
                return self.count
            return self.count - self._count_expired(self._clock(now))

    def clear(self):
        """Remove every entry and give the memory back."""
        cdef list keys, values
        with cython.critical_section(self):
            if self.busy:
                self._wait_not_busy()
            keys, values = self.slot_keys, self.slot_values
            self.slot_keys, self.slot_values = [], []
            self._free_arrays()
        del keys, values  # released here, with the cache already empty

    def keys(self):
        """Live keys, most recently used first."""
        return self._snapshot(0)

    def values(self):
        """Live values, most recently used first."""
        return self._snapshot(1)

    def items(self):
        """Live (key, value) pairs, most recently used first."""
        return self._snapshot(2)

    def __iter__(self):
        return iter(self._snapshot(0))

    # -- for tests ----------------------------------------------------------

    def check_invariants(self):
        """Raise AssertionError if the index, recency list, free list or heap disagree."""
        cdef Py_ssize_t i, n = 0, free = 0, total = 0, filed = 0, in_table = 0, in_lane = 0, lane_len = 0
        cdef int32_t s, p
        with cython.critical_section(self):
            assert len(self.slot_keys) == self.capacity, "key list length != capacity"
            assert len(self.slot_values) == self.capacity, "value list length != capacity"
            s, p = self.head, -1
            while s >= 0:
                assert n < self.capacity, "recency list has a cycle"
                assert self.slots[s].prev == p, "prev link broken"
                assert self._reachable_in_table(s), "live slot missing from the table"
                total += self._size(s)
                i = self.slots[s].heap_pos
                if self.slots[s].deadline == INF:
                    assert i == NOT_FILED, "never-expiring entry is filed for expiry"
                elif i == IN_LANE:
                    in_lane += 1
                else:
                    assert 0 <= i < self.heap_len and self.heap_slot[i] == s, "entry missing from the heap"
                    assert self.heap_key[i] <= self.slots[s].deadline, "heap key later than the deadline"
                    filed += 1
                n += 1
                p, s = s, self.slots[s].next
            assert p == self.tail, "tail is not the last slot"
            assert n == self.count, "count differs from the recency list"
            s = self.free_head
            while s >= 0:
                assert free < self.capacity, "free list has a cycle"
                assert self.slot_keys[s] is None and self.slot_values[s] is None, "free slot holds a reference"
                free += 1
                s = self.slots[s].next
            assert n + free == self.capacity, "slots leaked: live + free != capacity"
            for i in range(self.table_size if self.capacity else 0):
                if self.table[i].slot >= 0:
                    assert self.table[i].hash32 == self.slots[self.table[i].slot].hash32, "bucket hash differs"
                    in_table += 1
            assert in_table == n, "table holds a different number of slots"
            assert filed == self.heap_len, "heap holds a different number of slots"
            s, p = self.lane_head, -1
            while s >= 0:
                assert lane_len < self.count, "lane has a cycle"
                assert self.slots[s].heap_pos == IN_LANE, "lane slot not marked as in the lane"
                assert self.slots[s].lane_prev == p, "lane_prev link broken"
                assert p < 0 or self.slots[p].deadline <= self.slots[s].deadline, "lane out of deadline order"
                lane_len += 1
                p, s = s, self.slots[s].lane_next
            assert p == self.lane_tail, "lane tail is not the last lane slot"
            assert lane_len == in_lane, "lane holds a different number of slots"
            for i in range(1, self.heap_len):
                assert self.heap_key[(i - 1) // HEAP_ARITY] <= self.heap_key[i], "heap order broken"
            assert total == self.currsize_c, "currsize differs from the sum of sizes"
            assert self.maxsize_c < 0 or self.currsize_c <= self.maxsize_c, "over maxsize"

    cdef bint _reachable_in_table(self, int32_t s) noexcept:
        # Whether slot s is found by probing from its home bucket.
        cdef Py_ssize_t i = home_bucket(self.slots[s].hash32, self.table_size)
        while self.table[i].slot >= 0:
            if self.table[i].slot == s:
                return True
            i += 1
            if i == self.table_size:
                i = 0
        return False
