package frontend

import (
	"hash/fnv"
	"math"
)

// schedule is one period of the smooth weighted round robin (the nginx
// algorithm) over integer weights: entry k is the version index of the k-th
// request. SWRR returns to its initial state after sum(weights)/gcd requests,
// so indexing the period with an atomic counter reproduces the infinite
// sequence without a lock. Its properties, for every version with share s:
//   - over the first N requests after the weights are installed, the count is
//     within one of s×N (strictly);
//   - with two versions, any window of N consecutive requests is within one
//     of s×N; with more versions, any window is within two (no sequence can
//     keep every version within one in every window for arbitrary shares:
//     balanced sequences with three or more different rates exist only for
//     special rates — Fraenkel's problem).
func schedule(w []int) []uint8 {
	g := 0
	total := 0
	for _, x := range w {
		g = gcd(g, x)
		total += x
	}
	if total == 0 {
		return nil
	}
	period := total / g
	ws := make([]int, len(w))
	for i, x := range w {
		ws[i] = x / g
	}
	cur := make([]int, len(w))
	out := make([]uint8, period)
	for k := range out {
		best := -1
		for i, x := range ws {
			if x == 0 {
				continue
			}
			cur[i] += x
			if best < 0 || cur[i] > cur[best] {
				best = i
			}
		}
		cur[best] -= period
		out[k] = uint8(best)
	}
	return out
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// hashString is FNV-1a 64: stable across processes and versions of aksml, so
// that several router instances agree on sticky assignments.
func hashString(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

func hashBytes(b []byte) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for _, c := range b {
		h ^= uint64(c)
		h *= prime
	}
	return h
}

// mix is the splitmix64 finaliser.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// rendezvous picks a version for a caller key by weighted rendezvous
// (highest random weight) hashing: version i scores w_i / −ln(u_i) with u_i a
// uniform hash of (key, version name); the highest score wins. A caller lands
// on version i with probability w_i/Σw, and changing one weight moves only
// callers to or from that version: a change from p to q % moves about |q−p| %
// of callers. seeds are the hashes of the version names.
func rendezvous(key uint64, w []int, seeds []uint64) int {
	best, bestScore := -1, 0.0
	for i, x := range w {
		if x == 0 {
			continue
		}
		h := mix(key ^ seeds[i])
		// u in (0, 1): 53 random bits, never 0.
		u := (float64(h>>11) + 0.5) / (1 << 53)
		score := float64(x) / -math.Log(u)
		if best < 0 || score > bestScore {
			best, bestScore = i, score
		}
	}
	return best
}
