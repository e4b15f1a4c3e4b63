package xmpp

import (
	"sort"
	"sync"
)

// router maps bare JIDs to the sessions bound for them in this process.
//
// TODO: several nodes sharing PostgreSQL route between nodes over NATS
// (DESIGN.md, "Storage and scale"); this router only knows local sessions.
// The callers go through sessions() and bind()/unbind(), so a clustered
// router replaces this type without touching them.
type router struct {
	mu    sync.RWMutex // guards users
	users map[string][]*Session
}

func newRouter() *router {
	return &router{users: make(map[string][]*Session)}
}

// bind adds sess and returns the session it replaces (same full JID), if
// any.
func (r *router) bind(sess *Session) (old *Session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	list := r.users[sess.bare]
	for i, s := range list {
		if s.resource == sess.resource {
			old = s
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	r.users[sess.bare] = append(list, sess)
	return old
}

// unbind removes sess if it is still bound.
func (r *router) unbind(sess *Session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	list := r.users[sess.bare]
	for i, s := range list {
		if s == sess {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(r.users, sess.bare)
	} else {
		r.users[sess.bare] = list
	}
}

// sessions returns the sessions of bare, in bind order. The slice is the
// caller's.
func (r *router) sessions(bare string) []*Session {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return append([]*Session(nil), r.users[bare]...)
}

// session returns the session bound to bare/resource, or nil.
func (r *router) session(bare, resource string) *Session {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, s := range r.users[bare] {
		if s.resource == resource {
			return s
		}
	}
	return nil
}

// available returns the sessions of bare that have sent available presence,
// highest priority first.
func (r *router) available(bare string) []*Session {
	var out []*Session
	for _, s := range r.sessions(bare) {
		if s.isAvailable() {
			out = append(out, s)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].prio() > out[j].prio() })
	return out
}
