# cython: language_level=3
"""Slots, key index, recency lists and expiry index over plain C arrays.

The algorithms both compiled cores share: ``_lru.pyx`` (arrays from
PyMem_Malloc, keys and values in Python lists) and the shared-memory core
(arrays inside a segment that every process maps at its own address).  So
everything works through a ``SlotsView``: the arrays' addresses in *this*
process plus a pointer to the scalar state, which may itself live in shared
memory.  Nothing here allocates, calls into Python, or can run user code;
the callers find keys (comparing them is theirs) and own the memory.

    slots[]   one 32-byte Slot per entry, numbered 0..capacity-1
                deadline    monotonic seconds; INFINITY = never expires
                hash32      low 32 bits of the key's hash
                stamp       last use (STAMP_BITS), plus SLOT_READ / SLOT_FREE
                prev/next   recency list, MRU head -> LRU tail (NIL at both ends);
                            free slots are chained through next from free_head
                exp_prev/exp_next
                            expiry lane links, lane ends coded LANE_END - lane;
                            or exp_next EXP_HEAP, exp_prev = index in the heap;
                            or exp_next EXP_NONE: not filed (never expires, free)
    table[]   open addressing, linear probing over table_size buckets of
              {slot, hash32}: probing and shifting never touch slots[];
              deletions shift back, so there are no tombstones
    recency   two lists, each ordered by last use: list 0 holds every entry
              under "lru" and the entries never read since created
              (*probation*) under "protect"; list 1 the *protected* entries,
              those read (get/touch) at least once since created.  Stamps
              grow with every use, so merging the two lists by stamp gives
              the one most-recently-used order that iteration shows.
    lanes     up to NLANES doubly linked lists, each in deadline order: an
              entry joins the lane whose last deadline is the latest one not
              after its own (entries of one lifetime arrive in deadline order,
              so one lifetime needs one lane): O(1) to file, unfile and expire.
    heap      4-ary min-heap (heap_slot[], heap_key[]) for what fits no lane;
              heap_key is a lower bound of the slot's deadline, re-checked
              when it reaches the top.

Eviction ("protect"): probation's least recently used entry goes first while
probation holds at least ``reserve`` (so a new user's session lives through
``reserve`` newer one-shot sessions even when the store is full of protected
ones), else protected's least recently used one.  Expired entries go before
any live entry under both policies (the callers expire first).
"""

from libc.math cimport INFINITY
from libc.stdint cimport int32_t, int64_t, uint32_t, uint64_t
from libc.string cimport memcpy
from cpython.time cimport monotonic


# == The default clock (both cores) ==============================================
#
# Linux's coarse monotonic clock: the origin of CLOCK_MONOTONIC (so time.monotonic()
# and every process of the host agree), a plain vDSO read of a few ns; elsewhere
# CPython's monotonic clock.  A coarse reading is up to one tick (1-10 ms) behind the
# true time, so the cores set deadlines one tick early (clock_slack()): an entry is
# never seen once its ttl has passed on time.monotonic() (`set(ttl=1); sleep(1);
# get()` misses, as with the pure core), at the price of leaving up to two ticks
# early; remaining times add the tick back, so re-setting an entry with its
# remaining ttl does not shorten it.

cdef extern from *:
    """
    #include <time.h>
    /* -1 where there is no coarse clock. */
    static double memorystore_coarse_clock(void) {
    #if defined(__linux__) && defined(CLOCK_MONOTONIC_COARSE)
        struct timespec ts;
        if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) == 0)
            return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
    #endif
        return -1.0;
    }
    /* Its tick, or 0 where there is no coarse clock. */
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
    double clock_slack "memorystore_coarse_resolution"() noexcept nogil


cdef inline double default_clock() noexcept nogil:
    cdef double t = memorystore_coarse_clock()
    return t if t >= 0 else monotonic()

cdef extern from *:
    """
    /* Index of the lowest set bit of x (x != 0): walks the lanes in use only. */
    #if defined(__GNUC__) || defined(__clang__)
    #define memorystore_lowest_bit(x) __builtin_ctz(x)
    #else
    static int memorystore_lowest_bit(unsigned int x) { int n = 0; while (!(x & 1u)) { x >>= 1; n++; } return n; }
    #endif
    """
    int lowest_bit "memorystore_lowest_bit"(uint32_t x) noexcept nogil

cdef extern from *:
    """
    /* Ask the CPU to start loading the cache line at p (a hint: no fault, no effect on results). */
    #if defined(__GNUC__) || defined(__clang__)
    #define memorystore_prefetch(p) __builtin_prefetch((const void *)(p))
    #else
    #define memorystore_prefetch(p) ((void)(p))
    #endif
    """
    void prefetch "memorystore_prefetch"(const void* p) noexcept nogil


cdef enum:
    NIL = -1
    NLANES = 8
    HEAP_ARITY = 4
    # Slot.exp_next when the slot is not in a lane
    EXP_NONE = -2           # not filed: never expires, or free
    EXP_HEAP = -3           # in the heap; exp_prev is its index there
    LANE_END = -4           # a lane's first exp_prev / last exp_next: LANE_END - lane
    # eviction policies
    POLICY_LRU = 0
    POLICY_PROTECT = 1
    # recency lists
    PROBATION = 0           # the only list under "lru"
    PROTECTED = 1

cdef extern from *:
    """
    #define MEMORYSTORE_SLOT_READ   0x80000000u /* read (get/touch) at least once since created */
    #define MEMORYSTORE_SLOT_FREE   0x40000000u /* on the free list */
    #define MEMORYSTORE_STAMP_MASK  0x3FFFFFFFu
    #define MEMORYSTORE_STAMP_LIMIT 0x20000000u /* renumber the stamps when the counter gets here */
    """
    const uint32_t SLOT_READ "MEMORYSTORE_SLOT_READ"
    const uint32_t SLOT_FREE "MEMORYSTORE_SLOT_FREE"
    const uint32_t STAMP_MASK "MEMORYSTORE_STAMP_MASK"
    const uint32_t STAMP_LIMIT "MEMORYSTORE_STAMP_LIMIT"

ctypedef struct Bucket:
    int32_t slot            # NIL: empty
    uint32_t hash32

ctypedef struct Slot:
    double deadline
    uint32_t hash32
    uint32_t stamp
    int32_t prev
    int32_t next
    int32_t exp_prev
    int32_t exp_next

# Counters of the operations, reported by stats(); they live with the state
# (host-wide in a shared segment).
ctypedef struct Counters:
    uint64_t hits               # reads (get, [], peek) that found a live entry
    uint64_t misses             # reads that found none (the expired ones included)
    uint64_t expired            # of the misses, those that found an expired entry
    uint64_t writes             # values stored
    uint64_t evictions          # live entries pushed out by the bound
    uint64_t evicted_unread     # of those, entries never read since created
    uint64_t expirations        # expired entries removed
    uint64_t deletions          # live entries removed on request
    uint64_t rejected           # entries too large to store

ctypedef struct SlotsState:
    int64_t maxsize             # -1: unbounded
    int64_t size                # total size of the entries held
    int64_t list_size[2]        # size per recency list
    int64_t reserve             # probation's share of maxsize ("protect")
    int32_t capacity            # slots in the arrays
    int32_t count               # entries held (expired ones not yet removed included)
    int32_t free_head
    int32_t table_size
    int32_t head[2]
    int32_t tail[2]
    int32_t lane_head[NLANES]
    int32_t lane_tail[NLANES]
    uint32_t lanes_used         # bit l: lane l is not empty
    int32_t heap_len
    int32_t heap_capacity       # callers keep heap_len < heap_capacity before an operation files
    uint32_t next_stamp
    int32_t policy
    Counters counters

ctypedef struct SlotsView:
    SlotsState* st
    Slot* slots
    Bucket* table
    int64_t* sizes              # NULL: every entry has size 1
    int32_t* heap_slot
    double* heap_key


# -- set-up --------------------------------------------------------------------

cdef inline void slots_reset(SlotsView* v) noexcept nogil:
    # Empty every structure over arrays of st.capacity slots and st.table_size
    # buckets; every slot goes on the free list.  Configuration and counters stay.
    cdef SlotsState* st = v.st
    cdef int32_t i
    cdef int lane
    for i in range(st.capacity):
        v.slots[i].next = i + 1 if i + 1 < st.capacity else NIL
        v.slots[i].stamp = SLOT_FREE
        v.slots[i].exp_next = EXP_NONE
    for i in range(st.table_size):
        v.table[i].slot = NIL
    st.free_head = 0 if st.capacity else NIL
    st.count = 0
    st.size = st.list_size[0] = st.list_size[1] = 0
    st.head[0] = st.head[1] = st.tail[0] = st.tail[1] = NIL
    for lane in range(NLANES):
        st.lane_head[lane] = st.lane_tail[lane] = NIL
    st.lanes_used = 0
    st.heap_len = 0
    st.next_stamp = 0


# Buckets for a capacity: 1.75x, so probes stay short at full occupancy (a load of 0.57:
# a miss probes ~3.2 buckets and a deletion shifts as few; 1.5x made a new entry at
# capacity, which misses, evicts and inserts, 80 instructions dearer; 2x saves 35 more
# but takes the index to 16 of the 64 bytes an entry may cost).
cdef inline int32_t table_size_for(int32_t capacity) noexcept nogil:
    return capacity + capacity // 4 * 3 + 1


# -- key index -----------------------------------------------------------------

# Home bucket of a 32-bit hash among n buckets: a Fibonacci scramble (keeps
# patterned ints apart), then multiply-shift into [0, n).
cdef inline int32_t home_bucket(uint32_t h, int32_t n) noexcept nogil:
    cdef uint32_t scrambled = h * <uint32_t>2654435769u
    return <int32_t>((<uint64_t>scrambled * <uint64_t>n) >> 32)


cdef inline void table_insert(SlotsView* v, int32_t s) noexcept nogil:
    # File slot s in the table (its key is known to be absent).
    cdef uint32_t h = v.slots[s].hash32
    cdef int32_t n = v.st.table_size
    cdef int32_t i = home_bucket(h, n)
    while v.table[i].slot >= 0:
        i += 1
        if i == n:
            i = 0
    v.table[i].slot = s
    v.table[i].hash32 = h


cdef inline void table_remove(SlotsView* v, int32_t s) noexcept nogil:
    # Take slot s out of the table, shifting later probes back into the hole.
    cdef int32_t n = v.st.table_size
    cdef int32_t hole = home_bucket(v.slots[s].hash32, n)
    cdef int32_t j, home
    while v.table[hole].slot != s:
        hole += 1
        if hole == n:
            hole = 0
    j = hole
    while True:
        j += 1
        if j == n:
            j = 0
        if v.table[j].slot < 0:
            break
        home = home_bucket(v.table[j].hash32, n)
        # the entry at j stays when its home lies cyclically in (hole, j]
        if (hole < j and hole < home <= j) or (hole > j and (home > hole or home <= j)):
            continue
        v.table[hole] = v.table[j]
        hole = j
    v.table[hole].slot = NIL


cdef inline void table_prefetch(SlotsView* v, int32_t s) noexcept nogil:
    # Start loading slot s's home bucket (removing s probes from there).
    prefetch(&v.table[home_bucket(v.slots[s].hash32, v.st.table_size)])


cdef inline bint table_reaches(SlotsView* v, int32_t s) noexcept nogil:
    # Whether probing from slot s's home bucket finds it (for the invariant check).
    cdef int32_t n = v.st.table_size
    cdef int32_t i = home_bucket(v.slots[s].hash32, n)
    while v.table[i].slot >= 0:
        if v.table[i].slot == s:
            return True
        i += 1
        if i == n:
            i = 0
    return False


# -- sizes -----------------------------------------------------------------------

cdef inline int64_t slot_size(SlotsView* v, int32_t s) noexcept nogil:
    return 1 if v.sizes == NULL else v.sizes[s]


# The recency list slot s belongs to.
cdef inline int list_of(SlotsView* v, int32_t s) noexcept nogil:
    if v.st.policy == POLICY_PROTECT and v.slots[s].stamp & SLOT_READ:
        return PROTECTED
    return PROBATION


cdef inline void slot_set_size(SlotsView* v, int32_t s, int64_t size) noexcept nogil:
    # Change the size of the entry in slot s (v.sizes must exist unless size is 1).
    cdef int64_t delta
    if v.sizes == NULL:
        return
    delta = size - v.sizes[s]
    v.sizes[s] = size
    v.st.size += delta
    v.st.list_size[list_of(v, s)] += delta


# -- recency lists -----------------------------------------------------------------

cdef inline void list_push_head(SlotsView* v, int32_t s, int l) noexcept nogil:
    # Put slot s at the head (most recently used end) of list l.
    cdef SlotsState* st = v.st
    v.slots[s].prev = NIL
    v.slots[s].next = st.head[l]
    if st.head[l] >= 0:
        v.slots[st.head[l]].prev = s
    else:
        st.tail[l] = s
    st.head[l] = s
    st.list_size[l] += slot_size(v, s)


cdef inline void list_unlink(SlotsView* v, int32_t s, int l) noexcept nogil:
    # Take slot s out of list l.
    cdef SlotsState* st = v.st
    cdef int32_t p = v.slots[s].prev
    cdef int32_t n = v.slots[s].next
    if p >= 0:
        v.slots[p].next = n
    else:
        st.head[l] = n
    if n >= 0:
        v.slots[n].prev = p
    else:
        st.tail[l] = p
    st.list_size[l] -= slot_size(v, s)


cdef inline void stamps_renumber(SlotsView* v) noexcept nogil:
    # Give the entries stamps 0..count-1 in their use order (the counter is
    # about to outgrow STAMP_BITS); both lists stay ordered.
    cdef int32_t a = v.st.tail[0]
    cdef int32_t b = v.st.tail[1]
    cdef int32_t s
    cdef uint32_t n = 0
    while a >= 0 or b >= 0:     # merge from the least recently used end
        if b < 0 or (a >= 0 and (v.slots[a].stamp & STAMP_MASK) < (v.slots[b].stamp & STAMP_MASK)):
            s = a
            a = v.slots[a].prev
        else:
            s = b
            b = v.slots[b].prev
        v.slots[s].stamp = (v.slots[s].stamp & ~STAMP_MASK) | n
        n += 1
    v.st.next_stamp = n


cdef inline void slot_stamp(SlotsView* v, int32_t s) noexcept nogil:
    # Record a use of slot s (already at the head of its list).
    cdef SlotsState* st = v.st
    v.slots[s].stamp = (v.slots[s].stamp & ~STAMP_MASK) | st.next_stamp
    st.next_stamp += 1
    if st.next_stamp == STAMP_LIMIT:
        stamps_renumber(v)


cdef inline void list_move_to_head(SlotsView* v, int32_t s, int l) noexcept nogil:
    # Move slot s, in list l and not its head, to the head (the list's size stays).
    cdef SlotsState* st = v.st
    cdef Slot* slot = &v.slots[s]
    cdef int32_t p = slot.prev          # >= 0: s is not the head
    cdef int32_t n = slot.next
    v.slots[p].next = n
    if n >= 0:
        v.slots[n].prev = p
    else:
        st.tail[l] = p
    slot.prev = NIL
    slot.next = st.head[l]
    v.slots[st.head[l]].prev = s
    st.head[l] = s


cdef inline void slot_read(SlotsView* v, int32_t s) noexcept nogil:
    # A read (get, touch) of the live entry in slot s: most recently used,
    # and protected from now on.
    cdef SlotsState* st = v.st
    cdef uint32_t stamp = v.slots[s].stamp
    cdef uint32_t used = st.next_stamp
    cdef int lst = PROBATION
    if st.policy == POLICY_PROTECT:
        if not (stamp & SLOT_READ):             # promoted: probation -> protected
            v.slots[s].stamp = stamp | SLOT_READ
            list_unlink(v, s, PROBATION)
            list_push_head(v, s, PROTECTED)
            slot_stamp(v, s)
            return
        lst = PROTECTED
    if st.head[lst] != s:
        list_move_to_head(v, s, lst)
    v.slots[s].stamp = (stamp & ~STAMP_MASK) | SLOT_READ | used      # slot_stamp's work, in one write
    st.next_stamp = used + 1
    if used + 1 == STAMP_LIMIT:
        stamps_renumber(v)


cdef inline void slot_written(SlotsView* v, int32_t s) noexcept nogil:
    # An overwrite of the live entry in slot s: most recently used in its own
    # list (a protected entry stays protected).
    cdef int lst = list_of(v, s)
    if v.st.head[lst] != s:
        list_move_to_head(v, s, lst)
    slot_stamp(v, s)


cdef inline int32_t mru_next(SlotsView* v, int32_t* a, int32_t* b) noexcept nogil:
    # The next slot in most-recently-used-first order from the cursors a, b
    # (start them at head[0], head[1]); NIL at the end.
    cdef int32_t s
    if a[0] >= 0 and (b[0] < 0 or (v.slots[a[0]].stamp & STAMP_MASK) > (v.slots[b[0]].stamp & STAMP_MASK)):
        s = a[0]
        a[0] = v.slots[s].next
    else:
        s = b[0]
        if s >= 0:
            b[0] = v.slots[s].next
    return s


cdef inline int32_t slots_victim(SlotsView* v, int32_t keep) noexcept nogil:
    # The live entry to evict next (never keep); NIL when there is none.
    # Callers remove expired entries first.
    cdef SlotsState* st = v.st
    cdef int32_t p = st.tail[PROBATION]
    cdef int32_t q = st.tail[PROTECTED]
    if p == keep:
        p = NIL
    if q == keep:
        q = NIL
    if p >= 0 and (q < 0 or st.list_size[PROBATION] >= st.reserve):
        return p
    return q if q >= 0 else p


# -- expiry heap -------------------------------------------------------------------

cdef inline void heap_place(SlotsView* v, int32_t i, int32_t s, double key) noexcept nogil:
    v.heap_slot[i] = s
    v.heap_key[i] = key
    v.slots[s].exp_prev = i


cdef inline void heap_sift_up(SlotsView* v, int32_t i) noexcept nogil:
    cdef int32_t s = v.heap_slot[i]
    cdef double key = v.heap_key[i]
    cdef int32_t parent
    while i > 0:
        parent = (i - 1) // HEAP_ARITY
        if v.heap_key[parent] <= key:
            break
        heap_place(v, i, v.heap_slot[parent], v.heap_key[parent])
        i = parent
    heap_place(v, i, s, key)


cdef inline void heap_sift_down(SlotsView* v, int32_t i) noexcept nogil:
    cdef int32_t s = v.heap_slot[i]
    cdef double key = v.heap_key[i]
    cdef int32_t n = v.st.heap_len
    cdef int32_t child, best, last
    while True:
        child = HEAP_ARITY * i + 1
        if child >= n:
            break
        best = child
        last = child + HEAP_ARITY
        if last > n:
            last = n
        child += 1
        while child < last:
            if v.heap_key[child] < v.heap_key[best]:
                best = child
            child += 1
        if v.heap_key[best] >= key:
            break
        heap_place(v, i, v.heap_slot[best], v.heap_key[best])
        i = best
    heap_place(v, i, s, key)


cdef inline void heap_push(SlotsView* v, int32_t s, double key) noexcept nogil:
    # File slot s in the heap (the caller made room: heap_len < heap_capacity).
    v.slots[s].exp_next = EXP_HEAP
    heap_place(v, v.st.heap_len, s, key)
    v.st.heap_len += 1
    heap_sift_up(v, v.st.heap_len - 1)


cdef inline void heap_remove(SlotsView* v, int32_t s) noexcept nogil:
    cdef int32_t i = v.slots[s].exp_prev
    cdef int32_t last = v.st.heap_len - 1
    v.slots[s].exp_next = EXP_NONE
    v.st.heap_len = last
    if i == last:
        return
    heap_place(v, i, v.heap_slot[last], v.heap_key[last])
    if i > 0 and v.heap_key[i] < v.heap_key[(i - 1) // HEAP_ARITY]:
        heap_sift_up(v, i)
    else:
        heap_sift_down(v, i)


cdef inline int32_t heap_top_next(SlotsView* v, double now, int32_t* stack, int32_t* top) noexcept nogil:
    # One step of a depth-first walk of the heap items keyed <= now, a subtree at the
    # root (a parent's key is <= its children's): the next item's index, its children
    # keyed <= now pushed on the stack; NIL when the walk is done.  Start it with
    # stack[0] = 0, *top = 1 when heap_key[0] <= now (*top = 0 otherwise); 256 places
    # are plenty (at most 3 a level are left pending, and a heap has under 16 levels).
    cdef int32_t i, child, end
    if top[0] == 0:
        return NIL
    top[0] -= 1
    i = stack[top[0]]
    child = HEAP_ARITY * i + 1
    end = child + HEAP_ARITY
    if end > v.st.heap_len:
        end = v.st.heap_len
    while child < end:
        if v.heap_key[child] <= now:
            stack[top[0]] = child
            top[0] += 1
        child += 1
    return i


# -- taking every expired entry at once ----------------------------------------------
#
# Popping an expired entry off the heap sifts its last item down through log4(heap_len)
# levels, a cache miss each on a large heap; and entries of many lifetimes expire in an
# order unrelated to where they sit in memory, so removing them in deadline order costs
# a cache miss or more an entry.  So expiry_take() moves every expired entry out of the
# lanes and the heap at once and mends the heap: when a large share of it expired, one
# pass in order through memory and a bottom-up rebuild (O(heap_len)); when a small share,
# the subtree at the root of the items keyed <= now, mended from its last item up (short
# sifts below the subtree).  expired_sort() puts them in slot order (a radix sort,
# linear) for the caller to remove them in memory order; the caller sorts what it hands
# back by deadline the same way.

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    typedef struct {
        uint64_t order;     /* what memorystore_expired_sort sorts by: the slot, or deadline_order() */
        int32_t slot;
        void *item;         /* the caller's (the in-process core: the pair it hands back) */
    } memorystore_expired;

    /* Sort items[0..n) by order (each <= largest); scratch has room for n.  Least
       significant byte first, over the bytes largest spans, skipping those every item
       shares (a deadline's exponent byte mostly); short runs by insertion.  Not
       inlined: one copy serves every call, and inlined copies would spend the
       compiler's inlining budget for the module (see setup.py) on a cold path. */
    #if defined(__GNUC__) || defined(__clang__)
    __attribute__((noinline, unused))   /* unused: the shared-memory core does not sort */
    #endif
    static void memorystore_expired_sort(memorystore_expired *items, memorystore_expired *scratch,
                                         int32_t n, uint64_t largest) {
        int32_t counts[8][256];
        memorystore_expired *source = items, *target = scratch, *swap;
        int nbytes = 1, byte;
        int32_t i, j;
        if (n <= 32) {
            for (i = 1; i < n; i++) {
                memorystore_expired item = items[i];
                for (j = i; j > 0 && items[j - 1].order > item.order; j--)
                    items[j] = items[j - 1];
                items[j] = item;
            }
            return;
        }
        while (nbytes < 8 && (largest >> (8 * nbytes)))
            nbytes++;
        memset(counts, 0, sizeof(counts));
        for (i = 0; i < n; i++)
            for (byte = 0; byte < nbytes; byte++)
                counts[byte][(items[i].order >> (8 * byte)) & 255]++;
        for (byte = 0; byte < nbytes; byte++) {
            int shift = 8 * byte;
            int32_t total = 0, c;
            if (counts[byte][(source[0].order >> shift) & 255] == n)
                continue;
            for (c = 0; c < 256; c++) {
                int32_t here = counts[byte][c];
                counts[byte][c] = total;
                total += here;
            }
            for (i = 0; i < n; i++)
                target[counts[byte][(source[i].order >> shift) & 255]++] = source[i];
            swap = source;
            source = target;
            target = swap;
        }
        if (source != items)
            memcpy(items, source, (size_t)n * sizeof(memorystore_expired));
    }
    """
    ctypedef struct Expired "memorystore_expired":
        uint64_t order
        int32_t slot
        void* item
    void expired_sort "memorystore_expired_sort"(Expired* items, Expired* scratch, int32_t n,
                                                 uint64_t largest) noexcept nogil


cdef inline uint64_t deadline_order(double deadline) noexcept nogil:
    # An unsigned integer in the deadlines' order (the IEEE-754 bits, sign folded in:
    # a fake timer may give negative times).
    cdef uint64_t bits
    memcpy(&bits, &deadline, sizeof(bits))
    return ~bits if bits >> 63 else bits | (<uint64_t>1 << 63)


cdef inline int32_t expired_add(SlotsView* v, Expired* out, int32_t taken, int32_t s) noexcept nogil:
    # Record slot s as out[taken] (ordered by its slot) and unfile it (EXP_NONE: its
    # index links are the caller's to read first); returns taken + 1.
    out[taken].order = <uint64_t>s
    out[taken].slot = s
    v.slots[s].exp_next = EXP_NONE
    return taken + 1


cdef inline int32_t heap_take_scanning(SlotsView* v, double now, Expired* out) noexcept nogil:
    # expiry_take's heap part when a large share of the heap expires: one pass over
    # it moves the expired entries to out[] and keeps the rest, keyed by their exact
    # deadlines, then the heap is rebuilt bottom-up.  Returns how many moved.
    cdef SlotsState* st = v.st
    cdef int32_t i, s, taken = 0, kept = 0
    cdef double deadline
    for i in range(st.heap_len):
        s = v.heap_slot[i]
        deadline = v.heap_key[i]
        if deadline <= now:
            deadline = v.slots[s].deadline      # the key was a lower bound
            if deadline <= now:
                taken = expired_add(v, out, taken, s)
                continue
        heap_place(v, kept, s, deadline)
        kept += 1
    st.heap_len = kept
    i = (kept - 2) // HEAP_ARITY if kept > 1 else -1      # the last parent, if any
    while i >= 0:
        heap_sift_down(v, i)
        i -= 1
    return taken


cdef inline int32_t heap_take_top(SlotsView* v, Expired* positions, int32_t count, double now,
                                  Expired* out) noexcept nogil:
    # expiry_take's heap part when a small share expires: positions[0..count) are the
    # heap items keyed <= now, a subtree at the root (a parent's key is <= its
    # children's), in increasing order.  From the last up, each expired one is moved
    # to out[] and its place filled with the heap's last item, sifted down; the others
    # get their exact deadlines as keys and are sifted down.  Going from the last up
    # keeps each place's subtrees heaps before it is mended (as in a bottom-up heap
    # build), and each sift starts below the subtree: short, where popping each entry
    # would sift from the root.  Returns how many moved.
    cdef SlotsState* st = v.st
    cdef int32_t index, i, s, last, taken = 0
    cdef double deadline
    for index in range(count - 1, -1, -1):
        i = <int32_t>positions[index].order
        s = v.heap_slot[i]
        deadline = v.slots[s].deadline
        if deadline <= now:
            taken = expired_add(v, out, taken, s)
            last = st.heap_len - 1
            st.heap_len = last
            if i < last:
                heap_place(v, i, v.heap_slot[last], v.heap_key[last])
                heap_sift_down(v, i)
        else:
            v.heap_key[i] = deadline            # the key was a lower bound
            heap_sift_down(v, i)
    return taken


cdef inline int32_t expiry_take(SlotsView* v, double now, Expired* out, int32_t room) noexcept nogil:
    # Move every entry whose deadline is <= now into out[] (room for 2 * room, room >=
    # expiry_count_at_most()), in no order, each ordered by its slot; they are unfiled
    # (EXP_NONE: the caller removes each, or files it again).  The heap keeps its other
    # entries, those it touches keyed by their exact deadlines.  Returns how many moved.
    cdef SlotsState* st = v.st
    cdef Expired* positions = out + room        # the heap items keyed <= now, when they are few
    cdef int32_t stack[256]
    cdef int32_t top, count = 0, i, taken = 0
    cdef int lane
    if st.heap_len and v.heap_key[0] <= now:
        if <int64_t>room * 4 >= st.heap_len:
            taken = heap_take_scanning(v, now, out)
        else:
            stack[0] = 0
            top = 1
            while True:
                i = heap_top_next(v, now, stack, &top)
                if i < 0:
                    break
                positions[count].order = <uint64_t>i
                count += 1
            expired_sort(positions, out, count, <uint64_t>st.heap_len)
            taken = heap_take_top(v, positions, count, now, out)
    for lane in range(NLANES):
        if st.lanes_used & (1u << lane):
            taken = lane_take_expired(v, lane, now, out, taken)
    return taken


# -- expiry lanes ------------------------------------------------------------------

cdef inline void lane_append(SlotsView* v, int32_t s, int lane) noexcept nogil:
    # File slot s at the end of a lane (its deadline is the latest there).
    cdef SlotsState* st = v.st
    cdef int32_t last = st.lane_tail[lane]
    v.slots[s].exp_next = LANE_END - lane
    if last >= 0:
        v.slots[s].exp_prev = last
        v.slots[last].exp_next = s
    else:
        v.slots[s].exp_prev = LANE_END - lane
        st.lane_head[lane] = s
        st.lanes_used |= 1u << lane
    st.lane_tail[lane] = s


cdef inline void lane_remove(SlotsView* v, int32_t s) noexcept nogil:
    # Take slot s out of its lane (found from the codes at the lane's ends).
    cdef SlotsState* st = v.st
    cdef int32_t p = v.slots[s].exp_prev
    cdef int32_t n = v.slots[s].exp_next
    if p >= 0:
        v.slots[p].exp_next = n
    elif n >= 0:
        st.lane_head[LANE_END - p] = n
    if n >= 0:
        v.slots[n].exp_prev = p
    elif p >= 0:
        st.lane_tail[LANE_END - n] = p
    if p < 0 and n < 0:         # it was the lane's only entry
        lane_set_empty(st, LANE_END - p)
    v.slots[s].exp_next = EXP_NONE


cdef inline void lane_set_empty(SlotsState* st, int lane) noexcept nogil:
    # A lane whose last entry left: free for another lifetime.
    st.lane_head[lane] = st.lane_tail[lane] = NIL
    st.lanes_used &= ~(1u << lane)


cdef inline int32_t lane_take_expired(SlotsView* v, int lane, double now, Expired* out, int32_t taken) noexcept nogil:
    # Cut a lane's expired prefix off, its entries recorded from out[taken] on (expired_add);
    # returns the new count.
    cdef SlotsState* st = v.st
    cdef int32_t s = st.lane_head[lane], after
    while s >= 0 and v.slots[s].deadline <= now:
        after = v.slots[s].exp_next
        taken = expired_add(v, out, taken, s)
        s = after
    if s >= 0:
        st.lane_head[lane] = s
        v.slots[s].exp_prev = LANE_END - lane
    else:
        lane_set_empty(st, lane)
    return taken


cdef inline int lane_for(SlotsView* v, double deadline) noexcept nogil:
    # The lane a deadline joins: the one whose last deadline is the latest not
    # after it (keeps the lanes of different lifetimes apart), else an empty
    # lane; -1 when every lane ends later (the heap takes it).
    cdef SlotsState* st = v.st
    cdef uint32_t used = st.lanes_used
    cdef int lane, best = -1, empty = -1
    cdef double last, best_last = -INFINITY
    if used & (used - 1) == 0:      # one lane in use or none: a store of one lifetime, on every write
        if used:
            lane = lowest_bit(used)
            if v.slots[st.lane_tail[lane]].deadline <= deadline:
                return lane
        return lowest_bit(~used)
    for lane in range(NLANES):
        if used & (1u << lane):
            last = v.slots[st.lane_tail[lane]].deadline
            if best_last <= last <= deadline:
                best, best_last = lane, last
        elif empty < 0:
            empty = lane
    return best if best >= 0 else empty


# -- expiry index ------------------------------------------------------------------

cdef inline void expiry_unfile(SlotsView* v, int32_t s) noexcept nogil:
    # Take slot s out of the expiry index, wherever it is filed.
    cdef int32_t n = v.slots[s].exp_next
    if n == EXP_HEAP:
        heap_remove(v, s)
    elif n != EXP_NONE:
        lane_remove(v, s)


cdef inline void expiry_file(SlotsView* v, int32_t s, double deadline) noexcept nogil:
    # Give slot s a new deadline and file it (heap_len < heap_capacity holds).
    cdef int lane
    cdef int32_t i
    if v.slots[s].exp_next == EXP_HEAP and deadline != INFINITY:
        i = v.slots[s].exp_prev
        if deadline >= v.heap_key[i] and lane_for(v, deadline) < 0:
            v.slots[s].deadline = deadline      # its key stays a lower bound: re-filed at the top
            return
    expiry_unfile(v, s)
    v.slots[s].deadline = deadline
    if deadline == INFINITY:
        return
    lane = lane_for(v, deadline)
    if lane >= 0:
        lane_append(v, s, lane)
    else:
        heap_push(v, s, deadline)


cdef inline double expiry_first(SlotsView* v) noexcept nogil:
    # A lower bound of the earliest deadline filed (INFINITY when none is).
    cdef SlotsState* st = v.st
    cdef double first = v.heap_key[0] if st.heap_len else INFINITY
    cdef int lane
    cdef uint32_t used = st.lanes_used
    while used:
        lane = lowest_bit(used)
        used &= used - 1
        if v.slots[st.lane_head[lane]].deadline < first:
            first = v.slots[st.lane_head[lane]].deadline
    return first


cdef inline int32_t expiry_next(SlotsView* v, double now) noexcept nogil:
    # The filed slot with the earliest deadline if that deadline is <= now, else NIL.
    # Heap keys that turn out to be lower bounds are re-filed on the way.
    cdef SlotsState* st = v.st
    cdef int lane
    cdef uint32_t used
    cdef int32_t s, best
    cdef double d, best_deadline
    while True:
        best = NIL
        best_deadline = now
        used = st.lanes_used
        while used:
            lane = lowest_bit(used)
            used &= used - 1
            s = st.lane_head[lane]
            d = v.slots[s].deadline
            if d <= best_deadline:
                best, best_deadline = s, d
        if st.heap_len == 0 or v.heap_key[0] > best_deadline or (best >= 0 and v.heap_key[0] == best_deadline):
            return best
        s = v.heap_slot[0]
        if v.slots[s].deadline == v.heap_key[0]:
            return s
        v.heap_key[0] = v.slots[s].deadline     # the deadline moved later: re-file it, keep looking
        heap_sift_down(v, 0)


cdef inline int32_t expiry_prefetch_after(SlotsView* v, int32_t s) noexcept nogil:
    # The slot after s in its lane (NIL if none or s is not in a lane), its table bucket
    # prefetched: a prune calls this before removing s, so that the next removal's bucket,
    # a cache miss on a large table, loads while s is removed.
    cdef int32_t after = v.slots[s].exp_next
    if after < 0:
        return NIL
    table_prefetch(v, after)
    return after


cdef inline int32_t expiry_tally(SlotsView* v, double now, int64_t* size, bint exact) noexcept nogil:
    # How many filed entries have expired at now, adding their sizes to *size
    # (unless size is NULL): each lane's expired prefix, then a depth-first
    # walk of the heap items keyed <= now.  Unless exact, those items count
    # without reading their slots' deadlines: no cache miss an item, and the
    # count is an upper bound (a key may be a lower bound of its deadline).
    cdef SlotsState* st = v.st
    cdef int32_t stack[256]
    cdef int32_t top = 1, count = 0, i, s
    cdef int lane
    if st.lanes_used:
        for lane in range(NLANES):
            s = st.lane_head[lane] if st.lanes_used & (1u << lane) else NIL
            while s >= 0 and v.slots[s].deadline <= now:
                count += 1
                if size != NULL:
                    size[0] += slot_size(v, s)
                s = v.slots[s].exp_next
    if st.heap_len == 0 or v.heap_key[0] > now:
        return count
    stack[0] = 0
    while True:
        i = heap_top_next(v, now, stack, &top)
        if i < 0:
            return count
        if not exact or v.slots[v.heap_slot[i]].deadline <= now:
            count += 1
            if size != NULL:
                size[0] += slot_size(v, v.heap_slot[i])


cdef inline int32_t expiry_count(SlotsView* v, double now) noexcept nogil:
    # How many filed entries have expired at now.
    return expiry_tally(v, now, NULL, True)


cdef inline int32_t expiry_count_at_most(SlotsView* v, double now) noexcept nogil:
    # An upper bound of expiry_count(), equal to it unless a heap key is a lower
    # bound of its deadline; it reads no heap item's slot.
    return expiry_tally(v, now, NULL, False)


# -- entries -----------------------------------------------------------------------

cdef inline int32_t slot_take(SlotsView* v, uint32_t h, double deadline, int64_t size) noexcept nogil:
    # Store a new entry (its key is absent; a free slot exists): filed in the
    # table, most recently used on probation, filed for expiry.  The caller
    # puts the key and value in the returned slot.
    cdef SlotsState* st = v.st
    cdef int32_t s = st.free_head
    st.free_head = v.slots[s].next
    v.slots[s].hash32 = h
    v.slots[s].stamp = 0
    v.slots[s].exp_next = EXP_NONE
    if v.sizes != NULL:
        v.sizes[s] = size
    st.count += 1
    st.size += size
    table_insert(v, s)
    list_push_head(v, s, PROBATION)
    slot_stamp(v, s)
    expiry_file(v, s, deadline)
    return s


cdef inline void slot_free(SlotsView* v, int32_t s) noexcept nogil:
    # Take the entry in slot s out of every structure and put the slot on the free list.
    table_remove(v, s)
    slot_free_untabled(v, s)


cdef inline void table_rebuild(SlotsView* v) noexcept nogil:
    # File every live slot in an emptied table: after removing many entries with
    # slot_free_untabled, cheaper than shifting buckets back one removal at a time.
    cdef int32_t i
    for i in range(v.st.table_size):
        v.table[i].slot = NIL
    for i in range(v.st.capacity):
        if not (v.slots[i].stamp & SLOT_FREE):
            table_insert(v, i)


cdef inline void slot_free_untabled(SlotsView* v, int32_t s) noexcept nogil:
    # slot_free but for the table, which then still files s: the caller rebuilds
    # it (table_rebuild) or drops it before anything probes it.
    cdef SlotsState* st = v.st
    list_unlink(v, s, list_of(v, s))
    expiry_unfile(v, s)
    st.size -= slot_size(v, s)
    st.count -= 1
    v.slots[s].stamp = SLOT_FREE
    v.slots[s].next = st.free_head
    st.free_head = s


# -- invariants --------------------------------------------------------------------

cdef inline const char* slots_check(SlotsView* v) noexcept nogil:
    # NULL when every structure agrees with the others, else what is broken.
    cdef SlotsState* st = v.st
    cdef int32_t s, p, i, n = 0, free = 0, in_table = 0, in_lanes = 0, in_heap = 0, lane_len
    cdef int64_t total, all_sizes = 0
    cdef int lst, lane
    cdef uint32_t stamp, previous
    for lst in range(2):
        s, p, total, previous = st.head[lst], NIL, 0, 0xFFFFFFFFu
        if lst == PROTECTED and st.policy != POLICY_PROTECT and s >= 0:
            return "the protected list is used under lru"
        while s >= 0:
            if n >= st.capacity:
                return "a recency list has a cycle"
            if v.slots[s].prev != p:
                return "a recency prev link is broken"
            if v.slots[s].stamp & SLOT_FREE:
                return "a listed slot is marked free"
            if list_of(v, s) != lst:
                return "an entry is in the wrong recency list"
            stamp = v.slots[s].stamp & STAMP_MASK
            if stamp >= previous or stamp >= st.next_stamp:
                return "a recency list is out of use order"
            previous = stamp
            if not table_reaches(v, s):
                return "a live slot is missing from the table"
            total += slot_size(v, s)
            i = v.slots[s].exp_next
            if v.slots[s].deadline == INFINITY:
                if i != EXP_NONE:
                    return "a never-expiring entry is filed for expiry"
            elif i == EXP_HEAP:
                i = v.slots[s].exp_prev
                if not (0 <= i < st.heap_len and v.heap_slot[i] == s):
                    return "an entry is missing from the heap"
                if v.heap_key[i] > v.slots[s].deadline:
                    return "a heap key is later than its deadline"
                in_heap += 1
            elif i == EXP_NONE:
                return "an expiring entry is not filed"
            else:
                in_lanes += 1
            n += 1
            p, s = s, v.slots[s].next
        if p != st.tail[lst]:
            return "a recency tail is not its list's last slot"
        if total != st.list_size[lst]:
            return "a list's size differs from the sum of its entries' sizes"
        all_sizes += total
    if n != st.count:
        return "count differs from the recency lists"
    if all_sizes != st.size:
        return "size differs from the sum of the entries' sizes"
    s = st.free_head
    while s >= 0:
        if free >= st.capacity:
            return "the free list has a cycle"
        if not (v.slots[s].stamp & SLOT_FREE) or v.slots[s].exp_next != EXP_NONE:
            return "a free slot is marked in use or filed"
        free += 1
        s = v.slots[s].next
    if n + free != st.capacity:
        return "slots leaked: live + free != capacity"
    for i in range(st.table_size if st.capacity else 0):
        if v.table[i].slot >= 0:
            if v.table[i].hash32 != v.slots[v.table[i].slot].hash32:
                return "a bucket's hash differs from its slot's"
            in_table += 1
    if in_table != n:
        return "the table holds a different number of slots"
    if in_heap != st.heap_len:
        return "the heap holds a different number of slots"
    for lane in range(NLANES):
        s, p, lane_len = st.lane_head[lane], LANE_END - lane, 0
        # (two tests: gcc 12 -O1+ folds "(s >= 0) != (bit)" to "bit")
        if (s >= 0 and not st.lanes_used & (1u << lane)) or (s < 0 and st.lanes_used & (1u << lane)):
            return "lanes_used disagrees with a lane"
        while s >= 0:
            if lane_len >= st.count:
                return "a lane has a cycle"
            if v.slots[s].exp_prev != p:
                return "a lane's prev link is broken"
            if p >= 0 and v.slots[p].deadline > v.slots[s].deadline:
                return "a lane is out of deadline order"
            lane_len += 1
            in_lanes -= 1
            p, s = s, v.slots[s].exp_next
        if s != LANE_END - lane and lane_len:
            return "a lane's end code is wrong"
        if lane_len and p != st.lane_tail[lane]:
            return "a lane's tail is not its last slot"
    if in_lanes != 0:
        return "the lanes hold a different number of slots"
    for i in range(1, st.heap_len):
        if v.heap_key[(i - 1) // HEAP_ARITY] > v.heap_key[i]:
            return "heap order is broken"
    if st.maxsize >= 0 and st.size > st.maxsize:
        return "over maxsize"
    return NULL


# == Recovery: rebuilding the derived structures (the shared-memory core) =========
#
# A process may die anywhere inside an operation on a shared segment.  What it
# leaves is trusted only in the slot records: for each slot whether it is live,
# and for a live one its deadline, hash32 and stamp (last use, SLOT_READ).
# Everything else -- the table, both recency lists, the lanes and the heap, the
# free list, count and sizes -- is derived, and slots_rebuild() derives it anew.

cdef inline void stamps_sort(SlotsView* v, int32_t* order, int32_t n) noexcept nogil:
    # Heapsort order[0..n) by stamp, oldest use first; no allocation.
    cdef int32_t start = n // 2, end = n, root, child, tmp
    while end > 1:
        if start > 0:
            start -= 1
        else:
            end -= 1
            tmp = order[end]
            order[end] = order[0]
            order[0] = tmp
        root = start
        while True:
            child = 2 * root + 1
            if child >= end:
                break
            if child + 1 < end and (v.slots[order[child + 1]].stamp & STAMP_MASK) > \
                    (v.slots[order[child]].stamp & STAMP_MASK):
                child += 1
            if (v.slots[order[root]].stamp & STAMP_MASK) >= (v.slots[order[child]].stamp & STAMP_MASK):
                break
            tmp = order[root]
            order[root] = order[child]
            order[child] = tmp
            root = child


cdef inline void slots_rebuild(SlotsView* v, int32_t* order) noexcept nogil:
    # Rebuild every derived structure from the slots: the caller has marked each
    # free slot with stamp SLOT_FREE and given each live one its deadline,
    # hash32 and stamp (SLOT_FREE clear).  Live entries keep their use order and
    # read flags (stamps are renumbered), are filed in the table and for expiry;
    # the free slots form the free list.  order[] is scratch for capacity
    # int32s; it may be v.heap_slot (the heap is refilled only after its last use).
    cdef SlotsState* st = v.st
    cdef int32_t s, i, n = 0
    cdef int32_t a, b
    cdef double deadline
    cdef int lane
    for i in range(st.table_size):
        v.table[i].slot = NIL
    st.count = 0
    st.size = st.list_size[0] = st.list_size[1] = 0
    st.head[0] = st.head[1] = st.tail[0] = st.tail[1] = NIL
    for lane in range(NLANES):
        st.lane_head[lane] = st.lane_tail[lane] = NIL
    st.lanes_used = 0
    st.heap_len = 0
    st.free_head = NIL
    s = st.capacity - 1
    while s >= 0:
        v.slots[s].exp_next = EXP_NONE
        if v.slots[s].stamp & SLOT_FREE:
            v.slots[s].stamp = SLOT_FREE
            v.slots[s].next = st.free_head
            st.free_head = s
        else:
            order[n] = s
            n += 1
        s -= 1
    stamps_sort(v, order, n)
    for i in range(n):                  # oldest first, so each list's head ends up the newest
        s = order[i]
        list_push_head(v, s, list_of(v, s))
        st.count += 1
        st.size += slot_size(v, s)
        table_insert(v, s)
    stamps_renumber(v)                  # distinct, dense stamps; next_stamp after them
    a, b = st.head[0], st.head[1]       # order[] may be the heap: file from the lists
    while True:
        s = mru_next(v, &a, &b)
        if s < 0:
            break
        deadline = v.slots[s].deadline
        expiry_file(v, s, deadline)
