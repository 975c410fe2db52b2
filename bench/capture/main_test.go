package main

import (
	"math"
	"slices"
	"testing"
)

func TestMedianCI(t *testing.T) {
	seq := func(n int) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[n-1-i] = float64(i + 1) // 1..n, reversed: medianCI sorts
		}
		return v
	}
	for _, c := range []struct {
		n      int
		lo, hi float64
	}{
		// The order statistics of the binomial tables: n = 48 gives the
		// 17th and 32nd, n = 12 the 3rd and 10th, n = 6 the 1st and
		// 6th; under 6 values, the whole range.
		{48, 17, 32},
		{12, 3, 10},
		{6, 1, 6},
		{5, 1, 5},
		{1, 1, 1},
	} {
		lo, hi := medianCI(seq(c.n))
		if lo != c.lo || hi != c.hi {
			t.Errorf("n=%d: medianCI = [%v, %v], want [%v, %v]", c.n, lo, hi, c.lo, c.hi)
		}
	}
	// The interval covers the median at least 95 % of the time: P(the
	// median is below the k-th value) is P(Binomial(n, ½) < k), which
	// must be at most 2.5 % for each n.
	for n := 6; n <= 200; n++ {
		lo, _ := medianCI(seq(n))
		k := int(lo)
		below := 0.0
		for j := range k {
			below += math.Exp(lgammaInt(n+1) - lgammaInt(j+1) - lgammaInt(n-j+1) - float64(n)*math.Ln2)
		}
		if below > 0.025 {
			t.Errorf("n=%d: k=%d leaves %.4f below, over 2.5 %%", n, k, below)
		}
		// And k is the largest such: one more would leave more than
		// 2.5 % below.
		next := below + math.Exp(lgammaInt(n+1)-lgammaInt(k+1)-lgammaInt(n-k+1)-float64(n)*math.Ln2)
		if next <= 0.025 {
			t.Errorf("n=%d: k=%d is not the largest (k+1 leaves %.4f below)", n, k, next)
		}
	}
}

func lgammaInt(n int) float64 {
	v, _ := math.Lgamma(float64(n))
	return v
}

func TestRoundOrder(t *testing.T) {
	three := []string{"off", "on", "ctl"}
	places := map[string]*[3]int{} // side → rounds at each place
	for _, s := range three {
		places[s] = new([3]int)
	}
	for r := range 6 {
		o := roundOrder(three, r)
		if got := slices.Sorted(slices.Values(o)); !slices.Equal(got, []string{"ctl", "off", "on"}) {
			t.Fatalf("round %d: %v is not an order of the three sides", r, o)
		}
		for i, s := range o {
			places[s][i]++
		}
	}
	for _, s := range three {
		for i, n := range places[s] {
			if n != 2 {
				t.Errorf("side %s is at place %d in %d of six rounds, want 2", s, i, n)
			}
		}
	}
	two := []string{"off", "on"}
	if o := roundOrder(two, 1); !slices.Equal(o, []string{"on", "off"}) {
		t.Errorf("round 2 of two sides: %v, want on first", o)
	}
	if o := roundOrder(two, 2); !slices.Equal(o, two) {
		t.Errorf("round 3 of two sides: %v, want off first", o)
	}
}
