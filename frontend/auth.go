package frontend

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"k8s.io/utils/clock"

	"github.com/aksml/aksml/errcode"
)

const keyAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// KeyLength is the length of keys made by GenerateKey.
const KeyLength = 32

// GenerateKey returns a new random service key: 32 characters from
// [A-Za-z0-9] (about 190 bits) drawn from crypto/rand, the shape of the keys
// Azure ML generates.
func GenerateKey() string {
	out := make([]byte, 0, KeyLength)
	var buf [64]byte
	for len(out) < KeyLength {
		rand.Read(buf[:]) // never fails (Go ≥ 1.24 crashes the program instead)
		for _, b := range buf {
			// 248 = 4×62: reject the top bytes to keep the draw uniform.
			if b < 248 && len(out) < KeyLength {
				out = append(out, keyAlphabet[int(b)%len(keyAlphabet)])
			}
		}
	}
	return string(out)
}

// bearer returns the credential of an "Authorization: Bearer X" header value
// (the scheme is case-insensitive), or nil.
func bearer(h []byte) []byte {
	const p = "bearer "
	if len(h) < len(p) || !bytes.EqualFold(h[:len(p)], []byte(p)) {
		return nil
	}
	return bytes.TrimSpace(h[len(p):])
}

// keyMatches compares cred against both keys in constant time (both
// comparisons always run, so timing tells neither which key matched nor how
// much of it).
func keyMatches(cred, primary, secondary []byte) bool {
	a := subtle.ConstantTimeCompare(cred, primary) & boolInt(len(primary) > 0)
	b := subtle.ConstantTimeCompare(cred, secondary) & boolInt(len(secondary) > 0)
	return a|b == 1
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Token is an access token for a route with token auth, as
// get_access_token returns it. In JSON the times are epoch seconds:
// {"accessToken": "...", "tokenType": "Bearer", "refreshAfter": 1700000000,
// "expiryOn": 1700003600}.
type Token struct {
	AccessToken  string
	TokenType    string
	RefreshAfter time.Time
	ExpiryOn     time.Time
}

type tokenJSON struct {
	AccessToken  string `json:"accessToken"`
	TokenType    string `json:"tokenType"`
	RefreshAfter int64  `json:"refreshAfter"`
	ExpiryOn     int64  `json:"expiryOn"`
}

// MarshalJSON writes the get_access_token shape with epoch-second times.
func (t Token) MarshalJSON() ([]byte, error) {
	return json.Marshal(tokenJSON{t.AccessToken, t.TokenType, t.RefreshAfter.Unix(), t.ExpiryOn.Unix()})
}

// UnmarshalJSON reads the shape MarshalJSON writes.
func (t *Token) UnmarshalJSON(b []byte) error {
	var j tokenJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return errcode.Wrap(errcode.InvalidArgument, err)
	}
	*t = Token{j.AccessToken, j.TokenType, time.Unix(j.RefreshAfter, 0), time.Unix(j.ExpiryOn, 0)}
	return nil
}

// TokenOptions configures a TokenIssuer. The zero value is usable.
type TokenOptions struct {
	// Clock gives issue times and judges expiry; nil means the real clock.
	Clock clock.PassiveClock
	// TTL is a token's lifetime; 0 means DefaultTokenTTL.
	TTL time.Duration
	// RefreshAfter is how long after issue a client should fetch a new token;
	// 0 means half the TTL.
	RefreshAfter time.Duration
}

// DefaultTokenTTL is a token's lifetime unless TokenOptions says otherwise.
const DefaultTokenTTL = time.Hour

const tokenIssuerName = "aksml"

// TokenIssuer issues and verifies access tokens: JWTs signed with HMAC-SHA256,
// whose audience is the route name and which carry an expiry. A token is
// accepted only by the route it was issued for, before it expires, and only
// if its signature verifies with the issuer's secret.
type TokenIssuer struct {
	secret  []byte
	clock   clock.PassiveClock
	ttl     time.Duration
	refresh time.Duration
	parser  *jwt.Parser
}

// NewTokenIssuer returns an issuer signing with secret; nil or empty secret
// means a random 32-byte one (tokens then die with the issuer).
func NewTokenIssuer(secret []byte, opts *TokenOptions) *TokenIssuer {
	if opts == nil {
		opts = &TokenOptions{}
	}
	if len(secret) == 0 {
		secret = make([]byte, 32)
		rand.Read(secret)
	}
	ti := &TokenIssuer{secret: bytes.Clone(secret), clock: opts.Clock, ttl: opts.TTL, refresh: opts.RefreshAfter}
	if ti.clock == nil {
		ti.clock = clock.RealClock{}
	}
	if ti.ttl <= 0 {
		ti.ttl = DefaultTokenTTL
	}
	if ti.refresh <= 0 || ti.refresh > ti.ttl {
		ti.refresh = ti.ttl / 2
	}
	ti.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithIssuer(tokenIssuerName),
		jwt.WithTimeFunc(ti.clock.Now),
	)
	return ti
}

// Issue returns a new token for the route named service.
func (ti *TokenIssuer) Issue(service string) (Token, error) {
	if service == "" {
		return Token{}, errcode.New(errcode.InvalidArgument, "token service name is empty")
	}
	now := ti.clock.Now()
	exp := now.Add(ti.ttl)
	claims := jwt.RegisteredClaims{
		Issuer:    tokenIssuerName,
		Audience:  jwt.ClaimStrings{service},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(exp),
		ID:        GenerateKey()[:16],
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(ti.secret)
	if err != nil {
		return Token{}, errcode.Wrap(errcode.Internal, err)
	}
	// NumericDate truncates to seconds; report what the token says.
	exp = claims.ExpiresAt.Time
	return Token{AccessToken: s, TokenType: "Bearer", RefreshAfter: now.Add(ti.refresh), ExpiryOn: exp}, nil
}

// Verify checks that token is valid now for the route named service. The
// error is errcode.Unauthenticated and says why (expired, wrong service, bad
// signature, malformed).
func (ti *TokenIssuer) Verify(token, service string) error {
	var claims jwt.RegisteredClaims
	_, err := ti.parser.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return ti.secret, nil })
	if err != nil {
		switch {
		case errors.Is(err, jwt.ErrTokenExpired):
			return errcode.Errorf(errcode.Unauthenticated, "token expired")
		case errors.Is(err, jwt.ErrTokenSignatureInvalid):
			return errcode.Errorf(errcode.Unauthenticated, "token signature is invalid")
		default:
			return errcode.Errorf(errcode.Unauthenticated, "token is invalid: %v", err)
		}
	}
	for _, a := range claims.Audience {
		if a == service {
			return nil
		}
	}
	return errcode.Errorf(errcode.Unauthenticated, "token is for another service, not %s", service)
}

// authError is the result of checking a request's credentials.
type authError struct{ reason string }

func (e *authError) Error() string { return e.reason }

var (
	errNoCredential = &authError{"missing Authorization: Bearer header"}
	errBadKey       = &authError{"invalid key"}
)

// check authenticates the Authorization header value h for route r.
func (rt *Router) checkAuth(r *compiled, h []byte) *authError {
	switch r.authMode {
	case AuthNone:
		return nil
	case AuthKey:
		cred := bearer(h)
		if len(cred) == 0 {
			return errNoCredential
		}
		if !keyMatches(cred, r.primary, r.secondary) {
			return errBadKey
		}
		return nil
	case AuthToken:
		cred := bearer(h)
		if len(cred) == 0 {
			return errNoCredential
		}
		if err := rt.tokens.Verify(string(cred), r.name); err != nil {
			return &authError{err.Error()}
		}
		return nil
	}
	return &authError{fmt.Sprintf("unknown auth mode %v", r.authMode)}
}
