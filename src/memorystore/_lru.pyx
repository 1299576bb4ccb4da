# cython: language_level=3, freethreading_compatible=True, embedsignature=True, embedsignature.format=clinic
# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The compiled core: ``LRUCache`` over C arrays (see ``_lru_py.py`` for the twin).

Every entry lives in a numbered *slot*; the C side is the shared ``_slots.pxd``
(drawn in full there), the Python side two lists::

     slot:           0      1      2      3    ...  capacity-1
    slot_keys[]    | k0   | k1   | None | k3   |    Python lists: the GC sees
    slot_values[]  | v0   | v1   | None | v3   |    keys and values there
    slots[]        | Slot | Slot | free | Slot |    one 32-byte C struct a slot:
                     deadline, hash32, last-use stamp and flags,
                     recency links, expiry links (or the heap index)
    sizes[]        NULL while every entry has size 1, else one int64 a slot

    table[]        {slot, hash32} buckets, 1.75 x capacity, linear probing
    recency        head -> ... -> tail, most recently used first; under
                   eviction="protect" two such lists: probation (never read
                   since created) and protected, merged by stamp to iterate
    expiry         up to 8 lanes in deadline order (one per lifetime in use),
                   and a 4-ary heap for deadlines that fit no lane; once heap
                   entries expire, every expired entry is taken out together
                   and removed in slot order (expiry_take)

User code (key __hash__/__eq__, the timer, getsizeof, values' __del__) never
runs while the arrays are half-updated: hashes, times and sizes are computed
before the critical section; __eq__ runs only while probing, before anything
changes, with ``busy`` set so that re-entry raises RuntimeError; removed keys
and values are collected and released after the section ends.
"""

cimport cython
from cpython.object cimport PyObject
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.pythread cimport PyThread_get_thread_ident
from cpython.ref cimport Py_INCREF, Py_XDECREF
from cpython.object cimport Py_EQ, PyObject_RichCompareBool
from libc.math cimport NAN
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t, UINT64_MAX
from libc.string cimport memset

from memorystore._slots cimport (
    EXP_HEAP, EXP_NONE, NIL, NLANES, POLICY_LRU, POLICY_PROTECT, SLOT_FREE, SLOT_READ,
    Bucket, Counters, Expired, Slot, SlotsState, SlotsView, clock_slack, default_clock, deadline_order,
    expired_sort, expiry_count, expiry_count_at_most, expiry_file, expiry_first, expiry_next, expiry_prefetch_after,
    expiry_take, expiry_tally, mru_next, prefetch, slot_free, slot_free_untabled, table_prefetch,
    slot_read, slot_set_size, slot_take, slot_written, slots_check, slots_reset, slots_victim, table_insert,
    table_rebuild, table_size_for, home_bucket,
)

import numbers
from datetime import timedelta
from types import GenericAlias

from memorystore._policy import PROBATION_SHARE, probation_reserve  # PROBATION_SHARE: see _policy
from memorystore._stats import CacheStats

cdef extern from *:
    long CYTHON_HEX_VERSION

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
    static inline int memorystore_releasable_now(PyObject *o) {
        PyTypeObject *type;
    #ifndef Py_GIL_DISABLED
        if (Py_REFCNT(o) > 1)
            return 1;
    #endif
        type = Py_TYPE(o);
        return type == &PyUnicode_Type || o == Py_None || type == &PyBytes_Type || type == &PyLong_Type
            || type == &PyFloat_Type || type == &PyBool_Type;
    }
    """
    bint releasable_now "memorystore_releasable_now"(PyObject* o) noexcept


cdef extern from *:
    """
    /* A key's hash: a str's cached one read in place (no call), else PyObject_Hash.
       (Free-threaded builds write the cache concurrently: they call.) */
    static inline Py_hash_t memorystore_key_hash(PyObject *key) {
    #ifndef Py_GIL_DISABLED
        if (PyUnicode_CheckExact(key)) {
            Py_hash_t h = ((PyASCIIObject *)key)->hash;
            if (h != -1)
                return h;
        }
    #endif
        return PyObject_Hash(key);
    }
    /* Whether two keys are equal when that is known without running user code:
       1 or 0 for two exact str (unicode_eq's test; both were hashed, so on 3.11
       both are "ready"), -1 otherwise (the caller runs __eq__). */
    static inline int memorystore_str_equal(PyObject *a, PyObject *b) {
        Py_ssize_t length;
        int kind;
        if (!PyUnicode_CheckExact(a) || !PyUnicode_CheckExact(b))
            return -1;
        length = PyUnicode_GET_LENGTH(a);
        if (length != PyUnicode_GET_LENGTH(b))
            return 0;
        /* Sids are ASCII: their characters follow the header, no kind or data pointer to fetch. */
        if (PyUnicode_IS_COMPACT_ASCII(a) && PyUnicode_IS_COMPACT_ASCII(b))
            return memcmp(((PyASCIIObject *)a) + 1, ((PyASCIIObject *)b) + 1, (size_t)length) == 0;
        kind = PyUnicode_KIND(a);
        if (kind != PyUnicode_KIND(b))
            return 0;
        return memcmp(PyUnicode_DATA(a), PyUnicode_DATA(b), (size_t)length * kind) == 0;
    }
    /* A new tuple of the n (2 or 3) items, untracked by the collector when no item is a
       container: it can be in no cycle, and CPython's collector would untrack it on its first
       pass anyway, after traversing it (expire() hands back one per entry: 200,000 tuples to
       traverse in the young collection that follows, a fifth of the cost of such a call). */
    static PyObject *memorystore_tuple(Py_ssize_t n, PyObject *a, PyObject *b, PyObject *c) {
        PyObject *t = PyTuple_New(n);
        if (t == NULL)
            return NULL;
        Py_INCREF(a);
        PyTuple_SET_ITEM(t, 0, a);
        Py_INCREF(b);
        PyTuple_SET_ITEM(t, 1, b);
        if (n == 3) {
            Py_INCREF(c);
            PyTuple_SET_ITEM(t, 2, c);
        }
        if (!PyType_IS_GC(Py_TYPE(a)) && !PyType_IS_GC(Py_TYPE(b)) && (n == 2 || !PyType_IS_GC(Py_TYPE(c))))
            PyObject_GC_UnTrack(t);
        return t;
    }
    #define memorystore_list_item(list, i) PyList_GET_ITEM(list, i)
    /* Put item in list[i] and release what was there (the caller knows that runs no user code). */
    static inline void memorystore_list_put(PyObject *list, Py_ssize_t i, PyObject *item) {
        PyObject *old = PyList_GET_ITEM(list, i);
        Py_INCREF(item);
        PyList_SET_ITEM(list, i, item);
        Py_DECREF(old);
    }
    /* Put item in list[i], giving it the caller's reference, and release what was there (as list_put). */
    static inline void memorystore_list_give(PyObject *list, Py_ssize_t i, PyObject *item) {
        PyObject *old = PyList_GET_ITEM(list, i);
        PyList_SET_ITEM(list, i, item);
        Py_DECREF(old);
    }
    /* Put None in list[i] and release what was there (the caller knows that runs no user code). */
    static inline void memorystore_list_clear_item(PyObject *list, Py_ssize_t i) {
        PyObject *old = PyList_GET_ITEM(list, i);
        Py_INCREF(Py_None);
        PyList_SET_ITEM(list, i, Py_None);
        Py_DECREF(old);
    }
    """
    # The slot lists go in as borrowed pointers, <PyObject*>self.slot_keys: handed an attribute
    # as `object`, Cython takes and drops a reference around each call (and keeps a dead
    # zero-check), 13 instructions of every c[k].
    void list_clear_item "memorystore_list_clear_item"(PyObject* list, Py_ssize_t i) noexcept
    int PyGC_Disable() noexcept
    int PyGC_Enable() noexcept
    Py_hash_t key_hash "memorystore_key_hash"(object key) except? -1
    int str_equal "memorystore_str_equal"(PyObject* a, PyObject* b) noexcept
    PyObject* list_item "memorystore_list_item"(PyObject* list, Py_ssize_t i) noexcept   # borrowed
    Py_ssize_t list_len "PyList_GET_SIZE"(PyObject* list) noexcept
    void list_put "memorystore_list_put"(PyObject* list, Py_ssize_t i, object item) noexcept
    void list_give "memorystore_list_give"(PyObject* list, Py_ssize_t i, PyObject* item) noexcept
    tuple untracked_tuple "memorystore_tuple"(Py_ssize_t n, PyObject* a, PyObject* b, PyObject* c)


cdef extern from *:
    """
    /* Hand the free memory at the top and in the middle of glibc's heap back to the
       OS.  Large arrays freed after glibc raised its mmap threshold (it does when a
       mapped block is freed) stay resident otherwise: 42% of a cleared 1M-entry
       cache did (issue 16).  Elsewhere (musl, macOS, mimalloc) nothing to do. */
    #if defined(__GLIBC__)
    #include <malloc.h>
    static void memorystore_heap_trim(void) { malloc_trim(0); }
    #else
    static void memorystore_heap_trim(void) { }
    #endif
    """
    void heap_trim "memorystore_heap_trim"() noexcept nogil


cdef extern from *:
    """
    /* One stats() counter goes up by n.  Building with -DMEMORYSTORE_NO_COUNTING
       compiles counting out: bench/stats_cost.py measures its cost that way. */
    #ifdef MEMORYSTORE_NO_COUNTING
    #define memorystore_count(counter, n) ((void)(counter), (void)(n))
    #else
    #define memorystore_count(counter, n) (*(counter) += (n))
    #endif
    """
    void counter_add "memorystore_count"(uint64_t* counter, uint64_t n) noexcept nogil


# How much earlier than now + ttl the default clock's deadlines are set (see clock_slack in _slots.pxd).
DEFAULT_CLOCK_SLACK = clock_slack()

CYTHON_VERSION = "%d.%d.%d" % ((CYTHON_HEX_VERSION >> 24) & 0xFF, (CYTHON_HEX_VERSION >> 16) & 0xFF,
                               (CYTHON_HEX_VERSION >> 8) & 0xFF)

__all__ = ["LRUCache", "CYTHON_VERSION", "PROBATION_SHARE"]

cdef double INF = float("inf")
cdef object MISSING = object()
cdef object REFUSED = object()      # _put's answer when only_if_absent found a live entry
cdef tuple NO_REMOVALS = ()
cdef str SET = "set"
cdef str EXPIRE = "expire"
cdef str EVICT = "evict"
cdef str REJECT = "reject"

cdef int32_t MIN_CAPACITY = 8
# Memory one slot costs, about: its Slot, 1.5 buckets, its key and value list pointers.
cdef size_t SLOT_BYTES = sizeof(Slot) + sizeof(Bucket) * 3 // 2 + 2 * sizeof(void*)
# Freeing at least this much (a clear or shrink) trims the heap (heap_trim); ~1 ms a trim.
cdef size_t TRIM_BYTES = 1 << 20
cdef int32_t MAX_CAPACITY = 0x3FFFFFFF
# Sizes above this count as this; a bound above it counts as SIZE_CAP - 1, so
# any such entry is "bigger than maxsize" and sums cannot overflow.
cdef Py_ssize_t SIZE_CAP = <Py_ssize_t>1 << 50

cdef enum:                  # what _expire_into hands back for each expired entry
    TRIPLES = 0
    PAIRS = 1
    RELEASED = 2


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


cdef int check_eviction(object eviction) except -1:
    if type(eviction) is not str:
        raise TypeError(f"eviction must be 'lru' or 'protect', not {type(eviction).__name__}")
    if eviction == "lru":
        return POLICY_LRU
    if eviction == "protect":
        return POLICY_PROTECT
    raise ValueError(f"eviction must be 'lru' or 'protect', not {eviction!r}")


# Smallest power of two >= n (n >= 1).
cdef inline int32_t pow2_at_least(int32_t n) noexcept nogil:
    cdef int32_t p = 1
    while p < n:
        p <<= 1
    return p


@cython.final
@cython.no_gc_clear
# binding=False: the methods are the interpreter's own method descriptors, not Cython function
# objects.  A free-threaded 3.13 makes those immortal once a second thread starts (3.14 defers
# their reference counts); a Cython function's count would be bumped by every c.get(k) of every
# thread: one cache line all threads write, which made 2 threads slower than 1.
@cython.binding(False)
cdef class LRUCache:
    """A bounded, TTL-aware LRU mapping; expired entries are invisible.

    ``maxsize`` bounds the total size (``getsizeof(value)`` per entry, else 1);
    ``ttl`` is the default lifetime in seconds (``None``: no expiry); ``timer``
    returns monotonic seconds (default: the C monotonic clock); ``eviction``
    is ``"lru"`` or ``"protect"`` (entries never read since created go first).
    """

    cdef:
        # configuration
        object _maxsize_obj, _ttl_obj, _getsizeof, _timer, _eviction
        double default_lifetime         # INF when no default ttl
        double clock_slack              # DEFAULT_CLOCK_SLACK with the C clock, 0 with a user timer
        # keys and values by slot; the C arrays and scalars are in v / state
        list slot_keys, slot_values
        SlotsState state
        SlotsView v
        # re-entry guard: set while a key's __eq__ runs, by busy_owner's thread
        bint busy
        unsigned long busy_owner
        object __weakref__

    __class_getitem__ = classmethod(GenericAlias)

    def __cinit__(self):
        self.v.st = &self.state
        self.state.maxsize = -1
        self.state.free_head = NIL
        slots_reset(&self.v)
        self.default_lifetime = INF
        self.slot_keys = []
        self.slot_values = []

    def __init__(self, maxsize=None, *, ttl=None, getsizeof=None, timer=None, eviction="lru"):
        if getsizeof is not None and not callable(getsizeof):
            raise TypeError("getsizeof must be callable or None")
        if timer is not None and not callable(timer):
            raise TypeError("timer must be callable or None")
        maxsize = check_maxsize(maxsize)
        ttl = check_default_ttl(ttl)
        cdef int policy = check_eviction(eviction)
        if self.state.count or self.state.capacity:
            raise TypeError("LRUCache.__init__() may not be called on a cache in use")
        self._maxsize_obj = maxsize
        self._ttl_obj = ttl
        self._eviction = eviction
        self.state.maxsize = -1 if maxsize is None else min(<object>maxsize, SIZE_CAP - 1)
        self.state.reserve = probation_reserve(maxsize)
        self.state.policy = policy
        self.default_lifetime = INF if ttl is None else <double>ttl
        self._getsizeof = getsizeof
        self._timer = timer
        self.clock_slack = DEFAULT_CLOCK_SLACK if timer is None else 0.0

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
    def eviction(self):
        return self._eviction

    @property
    def currsize(self):
        """Total size of the entries held, expired ones not yet removed included."""
        return self.state.size

    def now(self):
        """The cache's clock, in seconds."""
        return self._clock(self._user_time())

    def __repr__(self):
        return (f"LRUCache(maxsize={self._maxsize_obj!r}, ttl={self._ttl_obj!r}, "
                f"eviction={self._eviction!r}, currsize={self.state.size})")

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

    # The deadline of an entry given `lifetime` at `now` (see clock_slack in _slots.pxd); INF stays INF.
    cdef inline double _deadline(self, double now, double lifetime) noexcept nogil:
        return now + lifetime - self.clock_slack

    # -- memory -------------------------------------------------------------

    cdef void _free_arrays(self) noexcept:
        # Give every C array back; the cache then has capacity 0.
        PyMem_Free(self.v.slots)
        PyMem_Free(self.v.sizes)
        PyMem_Free(self.v.table)
        PyMem_Free(self.v.heap_slot)
        PyMem_Free(self.v.heap_key)
        self.v.slots = NULL
        self.v.sizes = NULL
        self.v.table = NULL
        self.v.heap_slot = NULL
        self.v.heap_key = NULL
        self.state.capacity = self.state.table_size = self.state.heap_capacity = 0
        slots_reset(&self.v)

    cdef int _resize(self, int32_t new_capacity) except -1:
        # Move the live entries into arrays of new_capacity slots (renumbered
        # in slot order); links, lanes and the heap keep their order under the
        # new numbers, and the table is rebuilt.
        cdef int32_t old_capacity = self.state.capacity
        cdef int32_t table_size = table_size_for(new_capacity)
        cdef Slot* slots = <Slot*>PyMem_Malloc(new_capacity * sizeof(Slot))
        cdef int64_t* sizes = NULL
        cdef Bucket* table = <Bucket*>PyMem_Malloc(table_size * sizeof(Bucket))
        cdef int32_t* renumbered = <int32_t*>PyMem_Malloc(max(old_capacity, 1) * sizeof(int32_t))
        if self.v.sizes != NULL:
            sizes = <int64_t*>PyMem_Malloc(new_capacity * sizeof(int64_t))
        if slots == NULL or table == NULL or renumbered == NULL or (self.v.sizes != NULL and sizes == NULL):
            PyMem_Free(slots)
            PyMem_Free(sizes)
            PyMem_Free(table)
            PyMem_Free(renumbered)
            raise MemoryError()
        cdef list keys = [None] * new_capacity
        cdef list values = [None] * new_capacity
        cdef list old_keys = self.slot_keys, old_values = self.slot_values
        cdef SlotsState* st = &self.state
        cdef Slot* old = self.v.slots
        cdef int32_t n = 0, i
        cdef int lst, lane
        for i in range(old_capacity):
            if old[i].stamp & SLOT_FREE:
                continue
            renumbered[i] = n
            keys[n] = old_keys[i]
            values[n] = old_values[i]
            slots[n] = old[i]
            if sizes != NULL:
                sizes[n] = self.v.sizes[i]
            n += 1
        for i in range(n):      # links to renumber; negative ones are ends and codes
            if slots[i].prev >= 0:
                slots[i].prev = renumbered[slots[i].prev]
            if slots[i].next >= 0:
                slots[i].next = renumbered[slots[i].next]
            if slots[i].exp_next == EXP_HEAP:
                self.v.heap_slot[slots[i].exp_prev] = i
            elif slots[i].exp_next != EXP_NONE:
                if slots[i].exp_prev >= 0:
                    slots[i].exp_prev = renumbered[slots[i].exp_prev]
                if slots[i].exp_next >= 0:
                    slots[i].exp_next = renumbered[slots[i].exp_next]
        for lst in range(2):
            if st.head[lst] >= 0:
                st.head[lst] = renumbered[st.head[lst]]
                st.tail[lst] = renumbered[st.tail[lst]]
        for lane in range(NLANES):
            if st.lane_head[lane] >= 0:
                st.lane_head[lane] = renumbered[st.lane_head[lane]]
                st.lane_tail[lane] = renumbered[st.lane_tail[lane]]
        PyMem_Free(renumbered)
        for i in range(n, new_capacity):          # the free list
            slots[i].next = i + 1 if i + 1 < new_capacity else NIL
            slots[i].stamp = SLOT_FREE
            slots[i].exp_next = EXP_NONE
        PyMem_Free(self.v.slots)
        PyMem_Free(self.v.sizes)
        PyMem_Free(self.v.table)
        self.slot_keys, self.slot_values = keys, values
        self.v.slots, self.v.sizes, self.v.table = slots, sizes, table
        st.capacity = new_capacity
        st.table_size = table_size
        st.free_head = n if n < new_capacity else NIL
        memset(table, 0xFF, table_size * sizeof(Bucket))
        for i in range(n):
            table_insert(&self.v, i)
        return 0

    cdef int _grow(self) except -1:
        # Make room for one more slot: double the capacity (capped by maxsize while sizes are all 1).
        cdef int64_t new_capacity = self.state.capacity * 2 if self.state.capacity else MIN_CAPACITY
        if self.v.sizes == NULL and self.state.maxsize > 0 and new_capacity > self.state.maxsize:
            new_capacity = max(self.state.maxsize, self.state.capacity + 1)
        if new_capacity > MAX_CAPACITY:
            if self.state.capacity >= MAX_CAPACITY:
                raise MemoryError("LRUCache is full")
            new_capacity = MAX_CAPACITY
        return self._resize(<int32_t>new_capacity)

    cdef inline int _maybe_shrink(self) except -1:
        # After removals: give memory back once the live count is far below capacity.
        if self.state.capacity > MIN_CAPACITY and self.state.count * 4 < self.state.capacity:
            self._shrink()
        return 0

    cdef int _shrink(self) except -1:
        # _maybe_shrink's work (the old slot lists hold only None by then: releasing them runs no user code).
        cdef int32_t old_capacity = self.state.capacity
        if self.state.count == 0:
            if self.state.capacity > MIN_CAPACITY:
                self._free_arrays()
                self.slot_keys, self.slot_values = [], []
        elif self.state.capacity > MIN_CAPACITY and self.state.count * 4 < self.state.capacity:
            self._resize(max(MIN_CAPACITY, pow2_at_least(2 * self.state.count)))
        if <size_t>(old_capacity - self.state.capacity) * SLOT_BYTES >= TRIM_BYTES:
            heap_trim()
        return 0

    cdef int _use_sizes(self) except -1:
        # Switch from "every size is 1" to a sizes array.
        cdef int32_t i
        if self.v.sizes != NULL or self.state.capacity == 0:
            return 0
        self.v.sizes = <int64_t*>PyMem_Malloc(self.state.capacity * sizeof(int64_t))
        if self.v.sizes == NULL:
            raise MemoryError()
        for i in range(self.state.capacity):
            self.v.sizes[i] = 1
        return 0

    cdef int _heap_room(self) except -1:
        # Keep room for one more heap item: an operation files at most one entry.
        cdef int32_t new_capacity
        cdef int32_t* heap_slot
        cdef double* heap_key
        if self.state.heap_len < self.state.heap_capacity:
            return 0
        new_capacity = max(MIN_CAPACITY, 2 * self.state.heap_capacity)
        heap_slot = <int32_t*>PyMem_Realloc(self.v.heap_slot, new_capacity * sizeof(int32_t))
        if heap_slot == NULL:
            raise MemoryError()
        self.v.heap_slot = heap_slot
        heap_key = <double*>PyMem_Realloc(self.v.heap_key, new_capacity * sizeof(double))
        if heap_key == NULL:
            raise MemoryError()
        self.v.heap_key = heap_key
        self.state.heap_capacity = new_capacity
        return 0

    # -- key index ----------------------------------------------------------

    cdef inline int32_t _find(self, object key, uint32_t h) except -2:
        # Slot holding key, or NIL.  Nothing has changed yet.  Two str compare here, with no user
        # code; any other pair of keys goes to _find_from, which runs __eq__.
        cdef int32_t i, s, n
        cdef int equal
        cdef PyObject* stored
        if self.busy or self._lists_cleared():
            self._check_usable()
        n = self.state.table_size
        if n == 0:
            return NIL
        i = home_bucket(h, n)
        while True:
            s = self.v.table[i].slot
            if s < 0:
                return NIL
            if self.v.table[i].hash32 == h:
                stored = list_item(<PyObject*>self.slot_keys, s)
                if stored == <PyObject*>key:
                    return s
                equal = str_equal(stored, <PyObject*>key)
                if equal < 0:
                    return self._find_from(key, h, i)
                if equal:
                    return s
            i += 1
            if i == n:
                i = 0

    cdef int32_t _find_from(self, object key, uint32_t h, int32_t i) except -2:
        # _find's probe from bucket i on, comparing with ==: may run key.__eq__, with busy set.
        cdef int32_t s, n = self.state.table_size
        cdef int equal
        cdef object stored
        while True:
            s = self.v.table[i].slot
            if s < 0:
                return NIL
            if self.v.table[i].hash32 == h:
                stored = self.slot_keys[s]
                if stored is key:
                    return s
                equal = str_equal(<PyObject*>stored, <PyObject*>key)
                if equal < 0:
                    self.busy = True
                    self.busy_owner = PyThread_get_thread_ident()
                    try:
                        equal = PyObject_RichCompareBool(stored, key, Py_EQ)
                    finally:
                        self.busy = False
                if equal:
                    return s
            i += 1
            if i == n:
                i = 0

    cdef int _check_usable(self) except -1:
        # _find's rare cases: wait out another thread's __eq__ (refuse re-entry); a cleared cache.
        if self.busy:
            self._wait_not_busy()
        if self._lists_cleared():
            raise RuntimeError("LRUCache was cleared by the garbage collector")
        return 0

    cdef inline bint _lists_cleared(self) noexcept:
        # Whether the collector emptied a slot list (the cache was in cyclic garbage and a
        # finalizer reached it): they always hold exactly capacity items otherwise.
        return list_len(<PyObject*>self.slot_keys) != self.state.capacity or \
            list_len(<PyObject*>self.slot_values) != self.state.capacity

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

    # -- entries ------------------------------------------------------------

    cdef inline bint _is_live(self, int32_t s, double user_time) noexcept:
        # Whether slot s (or NIL) holds an entry that has not expired (the clock is read only if needed).
        if s < 0:
            return False
        return self.v.slots[s].deadline == INF or self.v.slots[s].deadline > self._clock(user_time)

    cdef inline int _new_entry(self, object key, object value, uint32_t h, double deadline, int64_t size) except -1:
        # Store a new entry (its key is absent) in a free slot, as most recently used.
        cdef int32_t s
        if self.state.free_head < 0:
            self._grow()
        if size != 1 and self.v.sizes == NULL:
            self._use_sizes()
        s = slot_take(&self.v, h, deadline, size)
        list_put(<PyObject*>self.slot_keys, s, key)
        list_put(<PyObject*>self.slot_values, s, value)
        counter_add(&self.state.counters.writes, 1)
        return 0

    cdef tuple _remove_slot(self, int32_t s, str reason):
        # Take the entry in slot s out of every structure; hand back (key, value, reason).
        cdef object key = <object>list_item(<PyObject*>self.slot_keys, s)
        cdef object value = <object>list_item(<PyObject*>self.slot_values, s)
        self._free_slot(s)
        return (key, value, reason)

    cdef inline int _free_slot(self, int32_t s) except -1:
        # Take the entry in slot s out of every structure and free the slot; its
        # key and value references are dropped (callers hold them first).
        slot_free(&self.v, s)
        list_clear_item(<PyObject*>self.slot_keys, s)
        list_clear_item(<PyObject*>self.slot_values, s)
        return 0

    cdef inline list _drop(self, int32_t s, str reason, list removed, bint collect):
        # Remove slot s.  collect: append (key, value, reason) to removed.  Else
        # release key and value here when that runs no user code, and park them
        # in removed (allocated on demand) otherwise.  Returns removed.
        if collect:
            if removed is None:
                removed = []
            removed.append(self._remove_slot(s, reason))
            return removed
        if not (releasable_now(list_item(<PyObject*>self.slot_keys, s))
                and releasable_now(list_item(<PyObject*>self.slot_values, s))):
            if removed is None:
                removed = []
            removed.append(self.slot_keys[s])
            removed.append(self.slot_values[s])
        self._free_slot(s)      # key and value: parked in removed, or safe to release
        return removed

    cdef list _expire_into(self, double now, list removed, int shape):
        # Remove every entry expired at now into removed: TRIPLES (key, value,
        # "expire"), PAIRS (key, value), earliest deadline first; or RELEASED
        # (nothing, unless releasing could run user code: see expired_item;
        # removed may then be None and is allocated on demand), in any order.
        # Returns removed.  The garbage collector is off meanwhile: the tuples
        # handed back would otherwise trigger young collections that traverse a
        # young cache (ms on a cache filled a moment ago), and no finalizer may
        # run while the table is stale.  When most entries go, the table is not
        # updated per removal but rebuilt once at the end (bulk).  When expired
        # entries sit in the heap, every expired entry is taken out at once
        # (expire_taken), else the lanes' are popped one by one (expire_popping).
        cdef int32_t expired = expiry_count_at_most(&self.v, now)     # exact counting is a cache miss a heap item
        cdef int32_t remaining = self.state.count - expired
        cdef Expired* taken = NULL
        cdef bint bulk, collecting
        if expired == 0:
            return removed
        if remaining == 0 and shape == RELEASED and (
                self.state.heap_len == 0 or expiry_count(&self.v, now) == expired):
            return self._release_all(expired, removed)
        # per removal ~70 instructions of bucket shifting; a rebuild ~7 a slot and ~25 a live entry
        bulk = <int64_t>expired * 8 >= <int64_t>self.state.capacity + <int64_t>remaining * 3
        # the heap's expired entries are taken out together, the lanes' popped (without memory, all popped)
        if self.state.heap_len and self.v.heap_key[0] <= now:
            taken = <Expired*>PyMem_Malloc(2 * <size_t>expired * sizeof(Expired))
        collecting = PyGC_Disable()
        try:
            if taken != NULL:
                removed = expire_taken(self, now, removed, shape, bulk, taken, expired)
            else:
                removed = expire_popping(self, now, removed, shape, bulk, expired)
        finally:
            PyMem_Free(taken)
            if bulk:
                table_rebuild(&self.v)
            if collecting:
                PyGC_Enable()
        return removed

    cdef list _release_all(self, int32_t expired, list parked):
        # _expire_into(RELEASED) when every entry has expired: as clear(), the slot lists go
        # whole into parked (released by the caller after its section; no per-entry checks).
        cdef list keys = [], values = []        # allocated before anything changes
        if parked is None:
            parked = []
        parked.append(self.slot_keys)
        parked.append(self.slot_values)
        self.slot_keys, self.slot_values = keys, values
        self._free_arrays()
        counter_add(&self.state.counters.expirations, expired)
        return parked

    cdef inline list _make_room(self, int32_t keep, double now, list removed, bint collect, int64_t extra):
        # Bring size + extra within maxsize: expired entries first, then the
        # eviction policy's victims (never keep); what leaves goes through _drop.
        cdef int32_t s
        if expiry_first(&self.v) <= now:
            if collect and removed is None:
                removed = []
            removed = self._expire_into(now, removed, TRIPLES if collect else RELEASED)
        while self.state.size + extra > self.state.maxsize:
            s = slots_victim(&self.v, keep)
            if s < 0:
                break
            counter_add(&self.state.counters.evictions, 1)
            if not (self.v.slots[s].stamp & SLOT_READ):
                counter_add(&self.state.counters.evicted_unread, 1)
            removed = self._drop(s, EVICT, removed, collect)
        return removed

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
        entries removed (to make room, or the expired previous value);
        ``"evict"``: live entries pushed out by the eviction policy;
        ``"reject"``: the new value itself, not stored because its size exceeds
        maxsize (always the last triple).  With ``only_if_absent``, nothing
        changes and ``None`` is returned when a live entry is held under ``key``
        (an atomic create-if-absent).
        """
        removed = self._put(key, value, ttl, size, True, only_if_absent)
        if removed is REFUSED:
            return None
        return removed if removed else NO_REMOVALS

    cdef object _put(self, object key, object value, object ttl, object size, bint collect, bint only_if_absent):
        # put(); without collect, what leaves is released as _drop says and None or a list of it returned.
        cdef uint32_t h = <uint32_t>key_hash(key)
        cdef double lifetime = self._lifetime(ttl)
        cdef int64_t size_c
        cdef double now, deadline
        cdef int32_t s
        cdef list removed = None
        if size is None:
            size_c = 1 if self._getsizeof is None else check_size(self._getsizeof(value))
        else:
            size_c = check_size(size)
        now = self._user_time()
        with cython.critical_section(self):
            s = self._find(key, h)
            now = self._clock(now)
            if only_if_absent and s >= 0 and self.v.slots[s].deadline > now:
                return REFUSED
            self._heap_room()
            if size_c != 1 and self.v.sizes == NULL:
                self._use_sizes()
            if s >= 0 and self.v.slots[s].deadline <= now:    # the old entry expired: it leaves as such
                counter_add(&self.state.counters.expirations, 1)
                removed = self._drop(s, EXPIRE, removed, collect)
                s = NIL
            # deadline <= now: ttl <= 0, or so small that the entry would be born expired
            deadline = self._deadline(now, lifetime)
            if deadline <= now:
                if s >= 0:
                    counter_add(&self.state.counters.deletions, 1)
                    removed = self._drop(s, SET, removed, collect)
            elif self.state.maxsize >= 0 and size_c > self.state.maxsize:
                if s >= 0:
                    counter_add(&self.state.counters.deletions, 1)
                    removed = self._drop(s, SET, removed, collect)
                counter_add(&self.state.counters.rejected, 1)
                if collect:
                    if removed is None:
                        removed = []
                    removed.append((key, value, REJECT))
            elif s >= 0:
                if collect:
                    removed = [(self.slot_keys[s], self.slot_values[s], SET)]
                elif not releasable_now(list_item(<PyObject*>self.slot_values, s)):
                    removed = [self.slot_values[s]]
                list_put(<PyObject*>self.slot_values, s, value)      # the old value: in removed, or safe to release
                slot_set_size(&self.v, s, size_c)
                slot_written(&self.v, s)
                expiry_file(&self.v, s, deadline)
                counter_add(&self.state.counters.writes, 1)
                if self.state.maxsize >= 0 and self.state.size > self.state.maxsize:
                    removed = self._make_room(s, now, removed, collect, 0)
            else:
                if self.state.maxsize >= 0 and self.state.size + size_c > self.state.maxsize:
                    removed = self._make_room(NIL, now, removed, collect, size_c)
                self._new_entry(key, value, h, deadline, size_c)
        return removed

    def pop_expired(self, key, default=None):
        """If ``key`` is held but expired, remove it and return its value; else ``default``."""
        cdef uint32_t h = <uint32_t>key_hash(key)
        cdef double now = self._user_time()
        cdef int32_t s
        cdef tuple entry = None
        with cython.critical_section(self):
            s = self._find(key, h)
            if s >= 0 and not self._is_live(s, now):
                counter_add(&self.state.counters.expirations, 1)
                entry = self._remove_slot(s, EXPIRE)
                self._maybe_shrink()
        return default if entry is None else entry[1]

    def remaining(self, key):
        """Seconds left for a live key (``math.inf``: never expires); ``None`` if absent or expired."""
        cdef uint32_t h = <uint32_t>key_hash(key)
        cdef double now = self._user_time()
        cdef int32_t s
        with cython.critical_section(self):
            s = self._find(key, h)
            now = self._clock(now)
            if s < 0 or self.v.slots[s].deadline <= now:
                return None
            return self.v.slots[s].deadline + self.clock_slack - now

    cdef list _snapshot(self, int what):
        # Live entries MRU first: 0 keys, 1 values, 2 (key, value), 3 (key, value, remaining).
        cdef double now = self._user_time()
        cdef list out = []
        cdef int32_t s, a, b
        cdef double deadline
        with cython.critical_section(self):
            if self._lists_cleared():
                raise RuntimeError("LRUCache was cleared by the garbage collector")
            now = self._clock(now)
            a, b = self.state.head[0], self.state.head[1]
            while True:
                s = mru_next(&self.v, &a, &b)
                if s < 0:
                    break
                deadline = self.v.slots[s].deadline
                if deadline > now:
                    if what == 0:
                        out.append(self.slot_keys[s])
                    elif what == 1:
                        out.append(self.slot_values[s])
                    elif what == 2:
                        out.append((self.slot_keys[s], self.slot_values[s]))
                    else:
                        out.append((self.slot_keys[s], self.slot_values[s], deadline + self.clock_slack - now))
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
            if self.state.heap_len or self.state.lanes_used:
                now = self._clock(now)
                removed = self._expire_into(now, removed, PAIRS)
                if removed:
                    self._maybe_shrink()
        return removed

    def purge(self):
        """Remove every expired entry and return how many; unlike expire(), nothing is handed back."""
        cdef double now = self._user_time()
        cdef list parked = None         # entries whose release could run user code: dropped after the section
        cdef Py_ssize_t purged = 0
        cdef int32_t capacity = 0
        with cython.critical_section(self):
            capacity = self.state.capacity
            if self.busy:
                self._wait_not_busy()
            if self.state.heap_len or self.state.lanes_used:
                now = self._clock(now)
                purged = self.state.count
                parked = self._expire_into(now, None, RELEASED)
                purged -= self.state.count
                if purged:
                    self._maybe_shrink()
            capacity -= self.state.capacity
        del parked
        if <size_t>capacity * SLOT_BYTES >= TRIM_BYTES:     # the lists parked by _release_all are freed now
            heap_trim()
        return purged

    # -- mapping protocol ---------------------------------------------------

    def set(self, key, value, ttl=None):
        """Store with a per-entry ttl (None: the default; math.inf: never; <= 0: remove)."""
        self._put(key, value, ttl, None, False, False)

    def __setitem__(self, key, value):
        self._put(key, value, None, None, False, False)

    def get(self, key, default=None):
        """The live value (now most recently used), else ``default``."""
        return self._read(key, default, False)

    def __getitem__(self, key):
        return self._read(key, None, True)

    cdef object _read(self, object key, object default, bint missing_raises):
        # get() and [] in one body.  [] raises KeyError here rather than passing a sentinel to
        # get(): MISSING's reference count, bumped by every call, would be one cache line that
        # every thread writes on a free-threaded build (2 threads ran [] slower than 1).
        cdef uint32_t h = <uint32_t>key_hash(key)
        cdef double now = self._user_time()
        cdef int32_t s
        with cython.critical_section(self):
            s = self._find(key, h)
            if self._is_live(s, now):
                slot_read(&self.v, s)
                counter_add(&self.state.counters.hits, 1)
                return <object>list_item(<PyObject*>self.slot_values, s)
            self._count_miss(s)
        if missing_raises:
            raise KeyError(key)
        return default

    cdef inline void _count_miss(self, int32_t s) noexcept:
        # A read found no live entry; s is the expired one it found, or NIL.
        counter_add(&self.state.counters.misses, 1)
        if s >= 0:
            counter_add(&self.state.counters.expired, 1)

    def peek(self, key, default=None):
        """The live value without changing recency, else ``default``."""
        cdef uint32_t h = <uint32_t>key_hash(key)
        cdef double now = self._user_time()
        cdef int32_t s
        with cython.critical_section(self):
            s = self._find(key, h)
            if not self._is_live(s, now):
                self._count_miss(s)
                return default
            counter_add(&self.state.counters.hits, 1)
            return <object>list_item(<PyObject*>self.slot_values, s)

    def __contains__(self, key):
        cdef uint32_t h = <uint32_t>key_hash(key)
        cdef double now = self._user_time()
        with cython.critical_section(self):
            return self._is_live(self._find(key, h), now)

    def touch(self, key, ttl=None):
        """Give a live entry a new deadline and make it most recently used; False if none."""
        cdef uint32_t h = <uint32_t>key_hash(key)
        cdef double lifetime = self._lifetime(ttl)
        cdef double now = self._user_time()
        cdef int32_t s
        with cython.critical_section(self):
            s = self._find(key, h)
            now = self._clock(now)
            if s < 0 or self.v.slots[s].deadline <= now:
                return False
            self._heap_room()
            slot_read(&self.v, s)
            expiry_file(&self.v, s, self._deadline(now, lifetime) if lifetime > 0 else now)
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
        cdef uint32_t h = <uint32_t>key_hash(key)
        cdef double now = self._user_time()
        cdef int32_t s
        cdef object _stored_key = None, value = MISSING
        with cython.critical_section(self):
            s = self._find(key, h)
            if self._is_live(s, now):
                _stored_key = <object>list_item(<PyObject*>self.slot_keys, s)     # both released when this returns
                value = <object>list_item(<PyObject*>self.slot_values, s)
                counter_add(&self.state.counters.deletions, 1)
                self._free_slot(s)
                self._maybe_shrink()
        return value

    def __len__(self):
        cdef double now = self._user_time()
        with cython.critical_section(self):
            if self.state.heap_len == 0 and self.state.lanes_used == 0:
                return self.state.count
            return self.state.count - expiry_count(&self.v, self._clock(now))

    def clear(self):
        """Remove every entry and give the memory back."""
        cdef list keys, values
        cdef double now = self._user_time()
        cdef int32_t expired, capacity
        with cython.critical_section(self):
            capacity = self.state.capacity
            if self.busy:
                self._wait_not_busy()
            expired = expiry_count(&self.v, self._clock(now)) if self.state.count else 0
            counter_add(&self.state.counters.expirations, expired)
            counter_add(&self.state.counters.deletions, self.state.count - expired)
            keys, values = self.slot_keys, self.slot_values
            self.slot_keys, self.slot_values = [], []
            self._free_arrays()
        del keys, values  # released here, with the cache already empty
        if <size_t>capacity * SLOT_BYTES >= TRIM_BYTES:
            heap_trim()

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

    # -- statistics ---------------------------------------------------------

    def stats(self):
        """Counters since creation or reset_stats(), with the live length, size and maxsize."""
        cdef Counters c
        cdef double now = self._user_time()
        cdef int32_t length
        cdef int64_t expired_size = 0
        with cython.critical_section(self):
            c = self.state.counters
            length = self.state.count
            if self.state.heap_len or self.state.lanes_used:
                length -= expiry_tally(&self.v, self._clock(now), &expired_size, True)
            size = self.state.size - expired_size
        return CacheStats(c.hits, c.misses, c.expired, c.writes, c.evictions, c.evicted_unread, c.expirations,
                          c.deletions, c.rejected, length, size, self._maxsize_obj)

    def reset_stats(self):
        """Zero the counters."""
        with cython.critical_section(self):
            memset(&self.state.counters, 0, sizeof(Counters))

    # -- for tests ----------------------------------------------------------

    def check_invariants(self):
        """Raise AssertionError if the index, recency lists, free list or expiry index disagree."""
        cdef const char* broken
        cdef int32_t s
        with cython.critical_section(self):
            assert len(self.slot_keys) == self.state.capacity, "key list length != capacity"
            assert len(self.slot_values) == self.state.capacity, "value list length != capacity"
            broken = slots_check(&self.v)
            if broken != NULL:
                raise AssertionError(broken.decode())
            for s in range(self.state.capacity):
                if self.v.slots[s].stamp & SLOT_FREE:
                    assert self.slot_keys[s] is None and self.slot_values[s] is None, "free slot holds a reference"


# -- the removal loops of LRUCache._expire_into -------------------------------
#
# Module functions, not methods: a cdef method's address sits in the class's
# vtable, so its body stays in the module when the C compiler inlines it, and each
# inlined copy counts against the compiler's budget for the module's growth; past
# it, gcc stops inlining the lookups of c[k], get and set (+12 to +40 instructions
# each, counted).  A static function called once is inlined for free.

cdef list expire_popping(LRUCache self, double now, list removed, int shape, bint bulk, int32_t expired):
    # LRUCache._expire_into one entry at a time, earliest deadline first, off the lanes (the
    # heap holds none expired: else expire_taken runs).  Pairs and triples go into a list
    # sized once when removed is empty (growing it copies it again and again: a tenth of
    # expire()'s instructions), to expired, an upper bound of how many expire.
    cdef int32_t s, after
    cdef Py_ssize_t placed = 0, presized = 0     # items set in place; the presized list's length
    cdef object item
    if shape != RELEASED and not removed:
        removed = [None] * expired
        presized = expired
    try:
        while True:
            s = expiry_next(&self.v, now)
            if s < 0:
                break
            after = expiry_prefetch_after(&self.v, s)
            if after >= 0:      # the next key and value are increfed or released: load them meanwhile
                prefetch(list_item(<PyObject*>self.slot_keys, after))
                prefetch(list_item(<PyObject*>self.slot_values, after))
            item = expired_item(list_item(<PyObject*>self.slot_keys, s),
                                 list_item(<PyObject*>self.slot_values, s), shape)
            free_expired(self, s, bulk)
            if placed < presized:
                list_put(<PyObject*>removed, placed, item)
                placed += 1
            elif item is not None:
                if removed is None:
                    removed = []
                removed.append(item)
    finally:
        if placed < presized:       # fewer than the bound: no None handed back
            del removed[placed:]
    return removed


cdef list expire_taken(LRUCache self, double now, list removed, int shape, bint bulk, Expired* taken,
                       int32_t room):
    # LRUCache._expire_into with every expired entry taken out of the lanes and the heap at
    # once (expiry_take; taken has room for 2 * room, room >= how many expire) and removed in
    # memory order: many lifetimes expire in an order that has nothing to do with where
    # their entries sit, and following it costs a cache miss or more an entry.  The pairs
    # or triples made on the way are then sorted by deadline and put in place in order
    # (putting each at its place as it is made would be another miss each).
    cdef int32_t i, s, after, n, done = 0
    cdef bint ordered = shape != RELEASED
    cdef Py_ssize_t base = 0
    cdef object item
    n = expiry_take(&self.v, now, taken, room)
    expired_sort(taken, taken + n, n, <uint64_t>self.state.capacity)
    try:
        if ordered:
            base = len(removed)
            removed += [None] * n
        for i in range(n):
            s = taken[i].slot
            if i + 1 < n:
                after = taken[i + 1].slot
                table_prefetch(&self.v, after)
                prefetch(list_item(<PyObject*>self.slot_keys, after))
                prefetch(list_item(<PyObject*>self.slot_values, after))
            item = expired_item(list_item(<PyObject*>self.slot_keys, s),
                                 list_item(<PyObject*>self.slot_values, s), shape)
            if ordered:
                taken[i].order = deadline_order(self.v.slots[s].deadline)
                Py_INCREF(item)                 # held here until put in place
                taken[i].item = <PyObject*>item
            elif item is not None:
                if removed is None:
                    removed = []
                removed.append(item)
            free_expired(self, s, bulk)
            done = i + 1
    finally:
        if done < n:        # an error stopped it: drop what was made, file the rest again
            if ordered:
                for i in range(done):
                    Py_XDECREF(<PyObject*>taken[i].item)
                del removed[base:]
            for i in range(done, n):
                s = taken[i].slot
                expiry_file(&self.v, s, self.v.slots[s].deadline)
    if ordered:
        expired_sort(taken, taken + n, n, UINT64_MAX)
        for i in range(n):
            list_give(<PyObject*>removed, base + i, <PyObject*>taken[i].item)
    return removed


cdef inline object expired_item(PyObject* key, PyObject* value, int shape):
    # What the caller keeps of an expired entry: its pair or triple (shape); with
    # RELEASED None when releasing its key and value here runs no user code, else
    # the pair, for the caller to park and release after its section.
    if shape == TRIPLES:
        return untracked_tuple(3, key, value, <PyObject*>EXPIRE)
    if shape == PAIRS or not (releasable_now(key) and releasable_now(value)):
        return untracked_tuple(2, key, value, NULL)
    return None


cdef inline void free_expired(LRUCache self, int32_t s, bint bulk) noexcept:
    # Take the expired entry in slot s out of every structure (but the table when
    # bulk); its key and value are released (the caller holds what it keeps of them).
    counter_add(&self.state.counters.expirations, 1)
    if bulk:
        slot_free_untabled(&self.v, s)
    else:
        slot_free(&self.v, s)
    list_clear_item(<PyObject*>self.slot_keys, s)
    list_clear_item(<PyObject*>self.slot_values, s)
