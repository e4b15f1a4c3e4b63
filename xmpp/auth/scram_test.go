package auth

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"mellium.im/sasl"
)

var testAddr = netip.MustParseAddr("192.0.2.7")

var melliumMechs = map[string]sasl.Mechanism{
	MechSCRAMSHA1:       sasl.ScramSha1,
	MechSCRAMSHA256:     sasl.ScramSha256,
	MechSCRAMSHA1Plus:   sasl.ScramSha1Plus,
	MechSCRAMSHA256Plus: sasl.ScramSha256Plus,
	MechPlain:           sasl.Plain,
}

// exchangeOpts describes one login driven by mellium.im/sasl's client.
type exchangeOpts struct {
	mech           string
	user, password string
	authzid        string
	serverTLS      *tls.ConnectionState
	clientTLS      *tls.ConnectionState
	// tamper, if set, rewrites each client message before the server sees it.
	tamper func(step int, msg []byte) []byte
}

// login runs an exchange between mellium's client and our server and
// returns the authenticated username or the server's error.
func login(t *testing.T, srv *Server, o exchangeOpts) (string, error) {
	t.Helper()
	ctx := context.Background()
	opts := []sasl.Option{
		sasl.Credentials(func() ([]byte, []byte, []byte) {
			return []byte(o.user), []byte(o.password), []byte(o.authzid)
		}),
		sasl.RemoteMechanisms(Mechanisms(o.serverTLS)...),
	}
	if o.clientTLS != nil {
		opts = append(opts, sasl.TLSState(*o.clientTLS))
	}
	client := sasl.NewClient(melliumMechs[o.mech], opts...)
	_, resp, err := client.Step(nil)
	if err != nil {
		t.Fatalf("client start: %v", err)
	}
	x, err := srv.Start(ctx, o.mech, o.serverTLS, testAddr)
	if err != nil {
		return "", err
	}
	for step := 0; step < 5; step++ {
		if o.tamper != nil {
			resp = o.tamper(step, resp)
		}
		chal, done, err := x.Step(ctx, resp)
		if err != nil {
			if x.Username() != "" {
				t.Errorf("Username() = %q after failure", x.Username())
			}
			return "", err
		}
		if done {
			if len(chal) > 0 {
				if _, _, err := client.Step(chal); err != nil {
					t.Fatalf("client rejected the server's final message: %v", err)
				}
			}
			return x.Username(), nil
		}
		if _, resp, err = client.Step(chal); err != nil {
			t.Fatalf("client step: %v", err)
		}
	}
	t.Fatal("exchange did not finish")
	return "", nil
}

func condition(err error) string {
	var f *Failure
	if errors.As(err, &f) {
		return f.Condition
	}
	if err != nil {
		return "non-Failure error: " + err.Error()
	}
	return ""
}

func TestSCRAMWithMelliumClient(t *testing.T) {
	store := newTestStore(t)
	ctx := context.Background()
	if err := store.Create(ctx, "+12025550101", KindPhone, "correct horse"); err != nil {
		t.Fatal(err)
	}
	if err := store.Create(ctx, "weather", KindBot, "sunny"); err != nil {
		t.Fatal(err)
	}
	srv := NewServer(store, nil)
	s13, c13 := tlsPair(t, tls.VersionTLS13)

	for _, mech := range []string{MechSCRAMSHA1, MechSCRAMSHA256, MechSCRAMSHA1Plus,
		MechSCRAMSHA256Plus, MechPlain} {
		tests := []struct {
			name, user, password, authzid string
			want                          string // condition, "" for success
		}{
			{"good", "+12025550101", "correct horse", "", ""},
			{"good bot", "weather", "sunny", "", ""},
			{"bot name in other case", "Weather", "sunny", "", ""},
			{"good with own bare JID as authzid", "+12025550101", "correct horse",
				"+12025550101@example.net", ""},
			{"wrong password", "+12025550101", "battery staple", "", CondNotAuthorized},
			{"unknown account", "+12025550199", "correct horse", "", CondNotAuthorized},
			{"authzid of another account", "+12025550101", "correct horse",
				"weather@example.net", CondInvalidAuthzid},
		}
		for _, tc := range tests {
			t.Run(mech+"/"+tc.name, func(t *testing.T) {
				var first []byte
				record := func(step int, msg []byte) []byte {
					if step == 0 {
						first = msg
					}
					return msg
				}
				got, err := login(t, srv, exchangeOpts{mech: mech, user: tc.user,
					password: tc.password, authzid: tc.authzid, serverTLS: &s13, clientTLS: &c13,
					tamper: record})
				if strings.HasSuffix(mech, "-PLUS") && !bytes.HasPrefix(first, []byte("p=tls-exporter,")) {
					t.Errorf("client-first %q does not bind with tls-exporter", first)
				}
				if c := condition(err); c != tc.want {
					t.Fatalf("condition %q, want %q (err %v)", c, tc.want, err)
				}
				if tc.want == "" && got != strings.ToLower(tc.user) {
					t.Errorf("authenticated as %q, want %q", got, tc.user)
				}
			})
		}
	}
}

func TestUnknownAccountLooksReal(t *testing.T) {
	store := newTestStore(t)
	ctx := context.Background()
	if err := store.Create(ctx, "+12025550101", KindPhone, "pw"); err != nil {
		t.Fatal(err)
	}
	srv := NewServer(store, nil)
	first := func(user string) (string, error) {
		x, err := srv.Start(ctx, MechSCRAMSHA256, nil, testAddr)
		if err != nil {
			t.Fatal(err)
		}
		chal, _, err := x.Step(ctx, []byte("n,,n="+user+",r=abcdefgh"))
		if err != nil {
			t.Fatal(err)
		}
		attrs := strings.Split(string(chal), ",")
		if len(attrs) != 3 {
			t.Fatalf("server-first %q", chal)
		}
		_, _, err = x.Step(ctx, []byte("c=biws,r="+attrs[0][2:]+",p="+
			base64.StdEncoding.EncodeToString(make([]byte, 32))))
		return attrs[1] + "," + attrs[2], err
	}
	realShape, realErr := first("+12025550101")
	fake1, fakeErr := first("+12025550199")
	fake2, _ := first("+12025550199")
	if fake1 != fake2 {
		t.Errorf("unknown account's salt changes between attempts: %q then %q", fake1, fake2)
	}
	if len(realShape) != len(fake1) || realShape[strings.Index(realShape, ",i="):] !=
		fake1[strings.Index(fake1, ",i="):] {
		t.Errorf("server-first differs in shape: real %q, unknown %q", realShape, fake1)
	}
	var rf, ff *Failure
	if !errors.As(realErr, &rf) || !errors.As(fakeErr, &ff) {
		t.Fatalf("errors %v, %v", realErr, fakeErr)
	}
	if rf.Condition != ff.Condition || rf.Text != ff.Text {
		t.Errorf("client sees %q/%q for a wrong password but %q/%q for an unknown account",
			rf.Condition, rf.Text, ff.Condition, ff.Text)
	}
}

func TestSCRAMHostileClients(t *testing.T) {
	store := newTestStore(t)
	ctx := context.Background()
	if err := store.Create(ctx, "+12025550101", KindPhone, "pw"); err != nil {
		t.Fatal(err)
	}
	srv := NewServer(store, nil)
	s13, c13 := tlsPair(t, tls.VersionTLS13)
	_, other := tlsPair(t, tls.VersionTLS13)

	replaceAttr := func(msg []byte, attr, val string) []byte {
		parts := strings.Split(string(msg), ",")
		for i, p := range parts {
			if strings.HasPrefix(p, attr+"=") {
				parts[i] = attr + "=" + val
			}
		}
		return []byte(strings.Join(parts, ","))
	}
	tests := []struct {
		name      string
		mech      string
		clientTLS *tls.ConnectionState
		tamper    func(step int, msg []byte) []byte
		want      string
	}{
		{"downgrade: y flag while -PLUS offered", MechSCRAMSHA256, &c13,
			func(step int, msg []byte) []byte {
				if step == 0 {
					return append([]byte("y"), msg[1:]...)
				}
				return msg
			}, CondNotAuthorized},
		{"channel binding on a non-PLUS mechanism", MechSCRAMSHA256, &c13,
			func(step int, msg []byte) []byte {
				if step == 0 {
					return append([]byte("p=tls-exporter"), msg[1:]...)
				}
				return msg
			}, CondMalformedRequest},
		{"binding to another TLS connection", MechSCRAMSHA256Plus, &other, nil, CondNotAuthorized},
		{"client nonce changed in final", MechSCRAMSHA1, &c13,
			func(step int, msg []byte) []byte {
				if step == 1 {
					return replaceAttr(msg, "r", "forged"+strings.Repeat("x", 40))
				}
				return msg
			}, CondNotAuthorized},
		{"server nonce dropped in final", MechSCRAMSHA256, &c13,
			func(step int, msg []byte) []byte {
				if step == 1 {
					parts := strings.Split(string(msg), ",")
					return replaceAttr(msg, "r", parts[1][2:12])
				}
				return msg
			}, CondNotAuthorized},
		{"proof flipped", MechSCRAMSHA256, &c13,
			func(step int, msg []byte) []byte {
				if step == 1 {
					return replaceAttr(msg, "p", base64.StdEncoding.EncodeToString(make([]byte, 32)))
				}
				return msg
			}, CondNotAuthorized},
		{"oversized first message", MechSCRAMSHA256, &c13,
			func(step int, msg []byte) []byte {
				return append(msg, []byte(",x="+strings.Repeat("a", maxMessage))...)
			}, CondMalformedRequest},
		{"reserved m attribute", MechSCRAMSHA256, &c13,
			func(step int, msg []byte) []byte {
				if step == 0 {
					return []byte("n,,m=x,n=a,r=b")
				}
				return msg
			}, CondMalformedRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := login(t, srv, exchangeOpts{mech: tc.mech, user: "+12025550101",
				password: "pw", serverTLS: &s13, clientTLS: tc.clientTLS, tamper: tc.tamper})
			if c := condition(err); c != tc.want {
				t.Fatalf("condition %q, want %q (err %v)", c, tc.want, err)
			}
		})
	}
}

func TestMechanisms(t *testing.T) {
	s13, _ := tlsPair(t, tls.VersionTLS13)
	s12, _ := tlsPair(t, tls.VersionTLS12)
	tests := []struct {
		name string
		cs   *tls.ConnectionState
		want []string
	}{
		{"no TLS", nil, []string{MechSCRAMSHA256, MechSCRAMSHA1}},
		{"TLS 1.3", &s13, []string{MechSCRAMSHA256Plus, MechSCRAMSHA1Plus, MechSCRAMSHA256,
			MechSCRAMSHA1, MechPlain}},
		{"TLS 1.2 with extended master secret", &s12, []string{MechSCRAMSHA256Plus,
			MechSCRAMSHA1Plus, MechSCRAMSHA256, MechSCRAMSHA1, MechPlain}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Mechanisms(tc.cs); !slices.Equal(got, tc.want) {
				t.Errorf("Mechanisms = %v, want %v", got, tc.want)
			}
		})
	}

	srv := NewServer(newTestStore(t), nil)
	_, err := srv.Start(context.Background(), MechPlain, nil, testAddr)
	if c := condition(err); c != CondEncryptionRequired {
		t.Errorf("PLAIN without TLS: condition %q", c)
	}
	_, err = srv.Start(context.Background(), MechSCRAMSHA1Plus, nil, testAddr)
	if c := condition(err); c != CondInvalidMechanism {
		t.Errorf("-PLUS without TLS: condition %q", c)
	}
}

func TestPlain(t *testing.T) {
	store := newTestStore(t)
	ctx := context.Background()
	if err := store.Create(ctx, "+12025550101", KindPhone, "pw"); err != nil {
		t.Fatal(err)
	}
	srv := NewServer(store, nil)
	cs := &tls.ConnectionState{}
	tests := []struct {
		name string
		msg  string
		want string
	}{
		{"good", "\x00+12025550101\x00pw", ""},
		{"good with localpart authzid", "+12025550101\x00+12025550101\x00pw", ""},
		{"good with bare JID authcid", "\x00+12025550101@example.net\x00pw", ""},
		{"bad password", "\x00+12025550101\x00pX", CondNotAuthorized},
		{"unknown", "\x00+12025550102\x00pw", CondNotAuthorized},
		{"foreign authzid", "+12025550102@example.net\x00+12025550101\x00pw", CondInvalidAuthzid},
		{"full JID authzid", "+12025550101@example.net/r\x00+12025550101\x00pw", CondInvalidAuthzid},
		{"missing field", "+12025550101\x00pw", CondMalformedRequest},
		{"too long", "\x00+12025550101\x00" + strings.Repeat("p", maxMessage), CondMalformedRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x, err := srv.Start(ctx, MechPlain, cs, testAddr)
			if err != nil {
				t.Fatal(err)
			}
			_, done, err := x.Step(ctx, []byte(tc.msg))
			if c := condition(err); c != tc.want {
				t.Fatalf("condition %q, want %q (err %v)", c, tc.want, err)
			}
			if done != (tc.want == "") {
				t.Errorf("done = %v", done)
			}
			if tc.want == "" && x.Username() != "+12025550101" {
				t.Errorf("Username() = %q", x.Username())
			}
		})
	}
}

func TestEmptyInitialResponse(t *testing.T) {
	store := newTestStore(t)
	ctx := context.Background()
	srv := NewServer(store, nil)
	x, err := srv.Start(ctx, MechSCRAMSHA1, nil, testAddr)
	if err != nil {
		t.Fatal(err)
	}
	chal, done, err := x.Step(ctx, nil)
	if err != nil || done || len(chal) != 0 {
		t.Fatalf("Step(nil) = %q, %v, %v; want an empty challenge", chal, done, err)
	}
	if _, _, err := x.Step(ctx, nil); condition(err) != CondMalformedRequest {
		t.Fatalf("second empty message: %v", err)
	}
	if _, _, err := x.Step(ctx, []byte("n,,n=a,r=b")); condition(err) != CondMalformedRequest {
		t.Fatalf("step after failure: %v", err)
	}
}

func FuzzSCRAMClientFirst(f *testing.F) {
	for _, s := range []string{"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
		"p=tls-exporter,a=+1@x,n=+12025550101,r=abc", "y,,n=a=2Cb=3D,r=x,e=ext",
		"n,,m=x,n=a,r=b", "n,a=,n=,r="} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		m, err := parseClientFirst(msg)
		if err != nil {
			return
		}
		if m.gs2Header+m.bare != string(msg) {
			t.Fatalf("header %q + bare %q != message %q", m.gs2Header, m.bare, msg)
		}
		if m.username == "" || checkNonce(m.nonce) != nil {
			t.Fatalf("accepted username %q nonce %q", m.username, m.nonce)
		}
		if !bytes.ContainsAny([]byte{m.cbFlag}, "nyp") {
			t.Fatalf("flag %q", m.cbFlag)
		}
	})
}

func FuzzSCRAMClientFinal(f *testing.F) {
	for _, s := range []string{"c=biws,r=abcdef,p=dHpbWWjiW1I36Z5/8ypl2g6PHdE=",
		"c=eSws,r=x,e=1,p=AA==", "c=,r=,p=", "c=biws,r=a,p=!!"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		m, err := parseClientFinal(msg)
		if err != nil {
			return
		}
		if !strings.HasPrefix(string(msg), m.withoutProof+",p=") {
			t.Fatalf("withoutProof %q is not a prefix of %q", m.withoutProof, msg)
		}
		if len(m.proof) == 0 || m.nonce == "" {
			t.Fatalf("accepted empty proof or nonce in %q", msg)
		}
	})
}

// TestClientLacksBinding: after a client failed -PLUS with an unsupported
// binding type on this connection, its "y" flag is accepted; without that
// history it is a downgrade.
func TestClientLacksBinding(t *testing.T) {
	store := newTestStore(t)
	ctx := context.Background()
	srv := NewServer(store, nil)
	s13, _ := tlsPair(t, tls.VersionTLS13)

	x, _ := srv.Start(ctx, MechSCRAMSHA256Plus, &s13, testAddr)
	_, _, err := x.Step(ctx, []byte("p=tls-unique,,n=a,r=abc"))
	var f *Failure
	if !errors.As(err, &f) || !f.UnsupportedBinding {
		t.Fatalf("tls-unique: %v, want a Failure with UnsupportedBinding", err)
	}
	tests := []struct {
		name string
		opts []StartOption
		want string
	}{
		{"no history", nil, CondNotAuthorized},
		{"after a failed tls-unique attempt", []StartOption{ClientLacksBinding()}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x, err := srv.Start(ctx, MechSCRAMSHA256, &s13, testAddr, tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = x.Step(ctx, []byte("y,,n=a,r=abc"))
			if c := condition(err); c != tc.want {
				t.Errorf("condition %q, want %q", c, tc.want)
			}
		})
	}
}
