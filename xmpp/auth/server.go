package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"net/netip"
	"strings"
	"time"

	"mellium.im/xmpp/jid"
)

// SASL failure conditions of RFC 6120 § 6.5.
const (
	CondAborted              = "aborted"
	CondAccountDisabled      = "account-disabled"
	CondEncryptionRequired   = "encryption-required"
	CondInvalidAuthzid       = "invalid-authzid"
	CondInvalidMechanism     = "invalid-mechanism"
	CondMalformedRequest     = "malformed-request"
	CondNotAuthorized        = "not-authorized"
	CondTemporaryAuthFailure = "temporary-auth-failure"
)

// Failure is the error of a failed exchange. Condition and Text go to the
// client in <failure/>; Reason is for the operator's log at Warn and holds
// no secret (never a password, proof or key), but may say more than the
// client is told, such as "unknown account".
type Failure struct {
	Condition  string
	Text       string
	Reason     string
	RetryAfter time.Duration // for temporary-auth-failure from the throttle
	// UnsupportedBinding reports that the client asked for a channel
	// binding type other than tls-exporter; pass ClientLacksBinding to the
	// next Start on the same connection.
	UnsupportedBinding bool
}

// StartOption changes how an exchange starts.
type StartOption func(*scramExchange)

// ClientLacksBinding tells the exchange that, on this same TLS connection,
// the client already tried a -PLUS mechanism with a channel binding type
// the server does not have (tls-unique, which TLS 1.3 lacks). Its "y" flag
// is then the truth, not a sign that someone removed -PLUS from the
// features: that cannot happen inside the TLS connection it tried on.
// Clients such as slixmpp do exactly this.
func ClientLacksBinding() StartOption {
	return func(x *scramExchange) { x.clientLacksCB = true }
}

func (f *Failure) Error() string {
	return "sasl " + f.Condition + ": " + f.Reason
}

func fail(cond, reason string) *Failure {
	return &Failure{Condition: cond, Reason: reason}
}

// Mechanism names.
const (
	MechSCRAMSHA1       = "SCRAM-SHA-1"
	MechSCRAMSHA256     = "SCRAM-SHA-256"
	MechSCRAMSHA1Plus   = "SCRAM-SHA-1-PLUS"
	MechSCRAMSHA256Plus = "SCRAM-SHA-256-PLUS"
	MechPlain           = "PLAIN"
)

// RFC 9266 § 2: the tls-exporter channel binding.
const (
	exporterLabel = "EXPORTER-Channel-Binding"
	exporterLen   = 32
)

// Mechanisms returns the mechanisms to offer on a connection, strongest
// first. tlsState nil means no TLS: only SCRAM without channel binding (the
// caller decides whether to allow authentication at all). The -PLUS
// mechanisms need tls-exporter keying material, which Go gives for TLS 1.3
// and for TLS 1.2 with the extended master secret; PLAIN needs TLS.
func Mechanisms(tlsState *tls.ConnectionState) []string {
	var m []string
	if canBind(tlsState) {
		m = append(m, MechSCRAMSHA256Plus, MechSCRAMSHA1Plus)
	}
	m = append(m, MechSCRAMSHA256, MechSCRAMSHA1)
	if tlsState != nil {
		m = append(m, MechPlain)
	}
	return m
}

// canBind reports whether tls-exporter channel binding is possible. Go
// refuses ExportKeyingMaterial on TLS 1.2 without the extended master secret
// (RFC 9266 § 3 forbids it there), so asking is the test.
func canBind(cs *tls.ConnectionState) bool {
	if cs == nil || !cs.HandshakeComplete {
		return false
	}
	_, err := cs.ExportKeyingMaterial(exporterLabel, nil, exporterLen)
	return err == nil
}

// Server runs SASL exchanges against a Store. It is safe for concurrent use;
// each Exchange is not.
type Server struct {
	store    *Store
	throttle *Throttle // may be nil
}

// NewServer returns a Server. throttle may be nil to disable throttling;
// otherwise the exchanges consult it and record their outcome in it, so the
// caller does not.
func NewServer(store *Store, throttle *Throttle) *Server {
	return &Server{store: store, throttle: throttle}
}

// Exchange is one SASL exchange. Step is called with each client message
// (the initial response first, possibly empty) and returns the challenge to
// send; when done is true the client is authenticated and challenge, if not
// nil, is the additional data of <success/>. An error is a *Failure; after
// one the exchange is over.
type Exchange interface {
	Step(ctx context.Context, clientData []byte) (challenge []byte, done bool, err error)
	// Username is the authenticated localpart, "" until done.
	Username() string
}

// Start begins an exchange for mech on a connection with the given TLS state
// (nil without TLS) from remoteAddr.
func (s *Server) Start(ctx context.Context, mech string, tlsState *tls.ConnectionState,
	remoteAddr netip.Addr, opts ...StartOption) (Exchange, error) {
	offered := false
	for _, m := range Mechanisms(tlsState) {
		offered = offered || m == mech
	}
	if !offered {
		if mech == MechPlain && tlsState == nil {
			return nil, fail(CondEncryptionRequired, "PLAIN without TLS")
		}
		return nil, fail(CondInvalidMechanism, fmt.Sprintf("mechanism %.40q not offered", mech))
	}
	base := base{srv: s, addr: remoteAddr}
	if mech == MechPlain {
		return &plainExchange{base: base}, nil
	}
	x := &scramExchange{base: base, mech: mech, tlsState: tlsState}
	x.hashName = SHA1
	if strings.HasPrefix(mech, MechSCRAMSHA256) {
		x.hashName = SHA256
	}
	x.fn = hashFunc(x.hashName)
	x.plus = strings.HasSuffix(mech, "-PLUS")
	x.bindOffered = canBind(tlsState)
	for _, o := range opts {
		o(x)
	}
	return x, nil
}

// base holds what PLAIN and SCRAM exchanges share.
type base struct {
	srv      *Server
	addr     netip.Addr
	local    string // the claimed account, once known
	username string // set on success
	failed   *Failure
	done     bool
}

func (b *base) Username() string { return b.username }

// over is the answer to Step once the exchange has ended.
func (b *base) over() error {
	if b.failed != nil {
		return b.failed
	}
	return fail(CondMalformedRequest, "step after success")
}

// allow consults the throttle before any work is done for local.
func (b *base) allow() *Failure {
	if b.srv.throttle == nil {
		return nil
	}
	ok, wait := b.srv.throttle.Allow(b.addr, b.local)
	if ok {
		return nil
	}
	f := fail(CondTemporaryAuthFailure, "throttled after repeated failures")
	f.Text = "too many failed attempts; try again later"
	f.RetryAfter = wait
	return f
}

// finish records the outcome in the throttle and ends the exchange.
func (b *base) finish(f *Failure) error {
	if b.srv.throttle != nil && b.local != "" && f != nil &&
		f.Condition != CondTemporaryAuthFailure {
		b.srv.throttle.Failure(b.addr, b.local)
	}
	if f != nil {
		b.failed = f
		return f
	}
	b.done = true
	b.username = b.local
	if b.srv.throttle != nil {
		b.srv.throttle.Success(b.addr, b.local)
	}
	return nil
}

// canonicalLocal maps the username a client gave to a stored localpart:
// "+12025550101", a bot name in any case, or either followed by "@domain".
func (s *Server) canonicalLocal(name string) (string, bool) {
	if l, d, ok := strings.Cut(name, "@"); ok {
		if !strings.EqualFold(d, s.store.domain) {
			return "", false
		}
		name = l
	}
	if strings.HasPrefix(name, "+") {
		return name, true
	}
	n, err := NormalizeBot(name)
	return n, err == nil
}

// authzOK reports whether authzid is empty or names the account itself, as
// a localpart or a bare JID.
func (s *Server) authzOK(authzid, local string) bool {
	if authzid == "" || authzid == local {
		return true
	}
	j, err := jid.Parse(authzid)
	if err != nil || j.Resourcepart() != "" {
		return false
	}
	want, err := jid.New(local, s.store.domain, "")
	return err == nil && j.Equal(want)
}

// credentials returns the account's credential, or for an unknown name a
// fake one that looks the same and can never verify, so that the exchange
// for an unknown account answers and costs like one for a real account.
//
// The fake is derived in every case, so that its HMACs (about a
// microsecond) do not make unknown accounts the slower ones.
func (s *Server) credentials(ctx context.Context, local, hashName string) (Cred, bool, *Failure) {
	fake := s.store.fakeCred(local, hashName)
	c, err := s.store.Credentials(ctx, local, hashName)
	if err == nil {
		return c, true, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return Cred{}, false, fail(CondTemporaryAuthFailure, "loading credentials: "+err.Error())
	}
	return fake, false, nil
}

// fakeCred derives a credential for an unknown name from the server secret:
// the same name always gets the same salt, as a real account does, and the
// iteration count is the one most stored accounts had at start, or, with
// none, the one new accounts get.
func (st *Store) fakeCred(local, hashName string) Cred {
	fn := hashFunc(hashName)
	key := func(purpose string) []byte {
		return hmacSum(fn, st.secret, []byte(purpose+"\x00"+hashName+"\x00"+local))
	}
	iter := st.commonIter[hashName]
	if iter < 1 {
		iter = st.Iterations
	}
	if iter < 1 {
		iter = DefaultIterations
	}
	return Cred{Hash: hashName, Salt: key("salt")[:saltLen], Iterations: iter,
		StoredKey: key("stored"), ServerKey: key("server")}
}

// plainExchange is RFC 4616 PLAIN.
type plainExchange struct {
	base
	askedOnce bool
}

func (x *plainExchange) Step(ctx context.Context, data []byte) ([]byte, bool, error) {
	if x.done || x.failed != nil {
		return nil, false, x.over()
	}
	if len(data) == 0 && !x.askedOnce {
		// No initial response: send an empty challenge (RFC 6120 § 6.4.2).
		x.askedOnce = true
		return []byte{}, false, nil
	}
	if len(data) > maxMessage {
		return nil, false, x.finish(fail(CondMalformedRequest, "PLAIN message too long"))
	}
	parts := strings.Split(string(data), "\x00")
	if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
		return nil, false, x.finish(fail(CondMalformedRequest, "PLAIN message malformed"))
	}
	authzid, authcid, password := parts[0], parts[1], parts[2]
	local, ok := x.srv.canonicalLocal(authcid)
	if !ok {
		local = authcid
	}
	x.local = local
	if f := x.allow(); f != nil {
		return nil, false, x.finish(f)
	}

	c, known, f := x.srv.credentials(ctx, local, SHA256)
	if f != nil {
		return nil, false, x.finish(f)
	}
	// Derive and compare in every case, so that an unknown account costs the
	// same PBKDF2 work as a wrong password.
	derived := deriveCred(SHA256, password, c.Salt, c.Iterations)
	match := hmac.Equal(derived.StoredKey, c.StoredKey)
	switch {
	case !known:
		return nil, false, x.finish(fail(CondNotAuthorized, "unknown account"))
	case !match:
		return nil, false, x.finish(fail(CondNotAuthorized, "wrong password"))
	case !x.srv.authzOK(authzid, local):
		return nil, false, x.finish(fail(CondInvalidAuthzid, "authzid names another entity"))
	}
	return nil, true, x.finish(nil)
}

// scramExchange is SCRAM-SHA-1, SCRAM-SHA-256 and their -PLUS variants,
// RFC 5802 § 5 from the server's side, with RFC 9266 channel binding.
type scramExchange struct {
	base
	mech          string
	hashName      string
	fn            func() hash.Hash
	plus          bool
	bindOffered   bool // the -PLUS mechanisms were offered on this connection
	clientLacksCB bool // see ClientLacksBinding
	tlsState      *tls.ConnectionState

	step        int // 0: expect client-first, 1: expect client-final
	askedOnce   bool
	first       clientFirst
	serverFirst string
	nonce       string // client nonce + server nonce
	cred        Cred
	known       bool
}

func (x *scramExchange) Step(ctx context.Context, data []byte) ([]byte, bool, error) {
	if x.done || x.failed != nil {
		return nil, false, x.over()
	}
	if x.step == 0 {
		if len(data) == 0 && !x.askedOnce {
			x.askedOnce = true
			return []byte{}, false, nil
		}
		return x.serverFirstMessage(ctx, data)
	}
	return x.serverFinalMessage(data)
}

func (x *scramExchange) serverFirstMessage(ctx context.Context, data []byte) ([]byte, bool, error) {
	m, err := parseClientFirst(data)
	if err != nil {
		return nil, false, x.finish(fail(CondMalformedRequest, "client-first-message: "+err.Error()))
	}
	if f := x.checkBindingFlag(m); f != nil {
		return nil, false, x.finish(f)
	}
	local, ok := x.srv.canonicalLocal(m.username)
	if !ok {
		local = m.username
	}
	x.local = local
	if f := x.allow(); f != nil {
		return nil, false, x.finish(f)
	}
	cred, known, f := x.srv.credentials(ctx, local, x.hashName)
	if f != nil {
		return nil, false, x.finish(f)
	}

	snonce := make([]byte, 24)
	rand.Read(snonce)
	x.first, x.cred, x.known = m, cred, known
	x.nonce = m.nonce + base64.RawStdEncoding.EncodeToString(snonce)
	x.serverFirst = fmt.Sprintf("r=%s,s=%s,i=%d",
		x.nonce, base64.StdEncoding.EncodeToString(cred.Salt), cred.Iterations)
	x.step = 1
	return []byte(x.serverFirst), false, nil
}

// checkBindingFlag applies the GS2 channel binding rules of RFC 5802 § 6.
func (x *scramExchange) checkBindingFlag(m clientFirst) *Failure {
	switch {
	case x.plus && m.cbFlag != 'p':
		return fail(CondMalformedRequest, "-PLUS mechanism without channel binding")
	case x.plus && m.cbName != "tls-exporter":
		f := fail(CondNotAuthorized, "unsupported channel binding type")
		f.Text = "only tls-exporter channel binding is supported"
		f.UnsupportedBinding = true
		return f
	case !x.plus && m.cbFlag == 'p':
		return fail(CondMalformedRequest, "channel binding requested with a non-PLUS mechanism")
	case m.cbFlag == 'y' && x.bindOffered && !x.clientLacksCB:
		// The client can bind but believes we cannot, though we offered
		// -PLUS: someone removed it from the features on the way.
		return fail(CondNotAuthorized, "channel binding downgrade detected")
	}
	return nil
}

func (x *scramExchange) serverFinalMessage(data []byte) ([]byte, bool, error) {
	m, err := parseClientFinal(data)
	if err != nil {
		return nil, false, x.finish(fail(CondMalformedRequest, "client-final-message: "+err.Error()))
	}
	if subtle.ConstantTimeCompare([]byte(m.nonce), []byte(x.nonce)) != 1 {
		return nil, false, x.finish(fail(CondNotAuthorized, "nonce mismatch"))
	}
	wantCB := []byte(x.first.gs2Header)
	if x.plus {
		ekm, err := x.tlsState.ExportKeyingMaterial(exporterLabel, nil, exporterLen)
		if err != nil {
			return nil, false, x.finish(fail(CondTemporaryAuthFailure,
				"exporting keying material: "+err.Error()))
		}
		wantCB = append(wantCB, ekm...)
	}
	cbOK := hmac.Equal(m.cbData, wantCB)

	// The proof check runs whether or not the account exists, so that the
	// work, and the time, are the same.
	authMessage := x.first.bare + "," + x.serverFirst + "," + m.withoutProof
	clientSig := hmacSum(x.fn, x.cred.StoredKey, []byte(authMessage))
	proof := m.proof
	proofLenOK := len(proof) == len(clientSig)
	if !proofLenOK {
		proof = make([]byte, len(clientSig))
	}
	clientKey := make([]byte, len(clientSig))
	subtle.XORBytes(clientKey, proof, clientSig)
	h := x.fn()
	h.Write(clientKey)
	proofOK := hmac.Equal(h.Sum(nil), x.cred.StoredKey) && proofLenOK

	switch {
	case !cbOK:
		return nil, false, x.finish(fail(CondNotAuthorized, "channel binding data mismatch"))
	case !x.known:
		return nil, false, x.finish(fail(CondNotAuthorized, "unknown account"))
	case !proofOK:
		return nil, false, x.finish(fail(CondNotAuthorized, "wrong password"))
	case !x.srv.authzOK(x.first.authzid, x.local):
		return nil, false, x.finish(fail(CondInvalidAuthzid, "authzid names another entity"))
	}
	serverSig := hmacSum(x.fn, x.cred.ServerKey, []byte(authMessage))
	return []byte("v=" + base64.StdEncoding.EncodeToString(serverSig)), true, x.finish(nil)
}
