package checkpoint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
)

// catalogTestStore is an in-memory Store with injected faults, for the
// catalog and GC tests (memstore imports this package, so tests here cannot
// use it).
type catalogTestStore struct {
	mu   sync.Mutex
	objs map[string][]byte
	// deleteCalls counts Delete calls; the failDeleteAt-th one (1-based)
	// fails, as if the process died right before it.
	deleteCalls  int
	failDeleteAt int
	failGet      map[string]error
	failList     error
}

func newCatalogTestStore() *catalogTestStore {
	return &catalogTestStore{objs: map[string][]byte{}, failGet: map[string]error{}}
}

func (s *catalogTestStore) Put(_ context.Context, name string, r io.Reader, _ int64) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objs[name] = data
	return nil
}

func (s *catalogTestStore) PutIfAbsent(_ context.Context, name string, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.objs[name]; ok {
		return fmt.Errorf("%s: %w", name, ErrExists)
	}
	s.objs[name] = bytes.Clone(data)
	return nil
}

func (s *catalogTestStore) Get(_ context.Context, name string) (io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.failGet[name]; err != nil {
		return nil, err
	}
	data, ok := s.objs[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, ErrNotFound)
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

func (s *catalogTestStore) List(_ context.Context, prefix string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failList != nil {
		return nil, s.failList
	}
	var names []string
	for name := range s.objs {
		if strings.HasPrefix(name, prefix) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names, nil
}

func (s *catalogTestStore) Delete(_ context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleteCalls++
	if s.deleteCalls == s.failDeleteAt {
		return fmt.Errorf("injected failure of delete #%d (%s)", s.deleteCalls, name)
	}
	delete(s.objs, name)
	return nil
}

func (s *catalogTestStore) String() string { return "test://store" }

// names lists the store, ignoring injected faults.
func (s *catalogTestStore) names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.objs))
	for name := range s.objs {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// catalogTestSnapshot writes a checkpoint or savepoint of job "j" whose one
// subtask references objects (created, with their name as content, if
// missing), and returns its manifest.
func catalogTestSnapshot(t testing.TB, s *catalogTestStore, kind Kind, id uint64, objects ...string) *Manifest {
	t.Helper()
	st := SubtaskState{Operator: "op", KeyGroups: KeyGroupRange{0, 4}}
	for _, name := range objects {
		s.mu.Lock()
		data, ok := s.objs[name]
		if !ok {
			data = []byte(name)
			s.objs[name] = data
		}
		s.mu.Unlock()
		st.Keyed = append(st.Keyed, Handle{Name: name, Size: int64(len(data)),
			CRC32C: crc32.Checksum(data, manifestCRCTable), KeyGroups: KeyGroupRange{0, 4}})
	}
	m := &Manifest{Job: "j", ID: id, Kind: kind, MaxParallelism: 4,
		Operators: []OperatorState{{Name: "op", Parallelism: 1, Subtasks: []SubtaskState{st}}}}
	if _, err := PutManifest(context.Background(), s, m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestListManifests(t *testing.T) {
	ctx := context.Background()
	s := newCatalogTestStore()
	for _, id := range []uint64{10, 1, 3} {
		catalogTestSnapshot(t, s, KindCheckpoint, id, DataName("j", id, "a"))
	}
	catalogTestSnapshot(t, s, KindSavepoint, 7, SavepointDataName("j", 7, "a"))
	catalogTestSnapshot(t, s, KindSavepoint, 2)
	for _, name := range []string{
		"j/checkpoints/00000000000000000005.manifest.tmp", "j/checkpoints/5.manifest",
		"j/checkpointsx/00000000000000000006.manifest", "jj/checkpoints/00000000000000000004.manifest",
		"j/savepoints/00000000000000000009/data/manifest", "j/savepoints/x/manifest",
	} {
		s.objs[name] = []byte("x")
	}
	cps, err := ListCheckpoints(ctx, s, "j")
	if err != nil || !slices.Equal(cps, []uint64{1, 3, 10}) {
		t.Fatalf("ListCheckpoints = %v, %v", cps, err)
	}
	sps, err := ListSavepoints(ctx, s, "j")
	if err != nil || !slices.Equal(sps, []uint64{2, 7}) {
		t.Fatalf("ListSavepoints = %v, %v", sps, err)
	}
	if _, err := ListCheckpoints(ctx, s, "a/b"); err == nil {
		t.Fatal("bad job name accepted")
	}
	s.failList = errors.New("network down")
	if _, err := ListCheckpoints(ctx, s, "j"); err == nil || !strings.Contains(err.Error(), "list j/checkpoints/ in test://store: network down") {
		t.Fatalf("list failure: %v", err)
	}
}

func TestPutAndReadManifest(t *testing.T) {
	ctx := context.Background()
	s := newCatalogTestStore()
	m := cdcRichManifest()
	name, err := PutManifest(ctx, s, m)
	if err != nil || name != ManifestName("wc", m.ID) {
		t.Fatalf("PutManifest = %q, %v", name, err)
	}
	got, err := ReadManifest(ctx, s, name)
	if err != nil || got.ID != m.ID || len(got.Operators) != 3 {
		t.Fatalf("ReadManifest = %v, %v", got, err)
	}
	// A second incarnation completing the same id must see ErrExists.
	if _, err := PutManifest(ctx, s, m); !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), name) {
		t.Fatalf("second PutManifest: %v", err)
	}
	sp := cdcMinimalManifest()
	if name, err := PutManifest(ctx, s, sp); err != nil || name != SavepointManifestName("j", 0) {
		t.Fatalf("savepoint: %q, %v", name, err)
	}
	bad := cdcMinimalManifest()
	bad.Job = "a/b"
	if _, err := PutManifest(ctx, s, bad); err == nil {
		t.Fatal("invalid manifest written")
	}
	if n := len(s.names()); n != 2 {
		t.Fatalf("%d objects, want 2", n)
	}
}

func TestReadManifestErrors(t *testing.T) {
	ctx := context.Background()
	s := newCatalogTestStore()
	catalogTestSnapshot(t, s, KindCheckpoint, 1)
	good := s.objs[ManifestName("j", 1)]
	s.objs[ManifestName("j", 2)] = good // a manifest copied by hand
	s.objs[ManifestName("j", 3)] = good[:len(good)-1]
	s.failGet[ManifestName("j", 4)] = errors.New("503 slow down")
	for _, tc := range []struct {
		id   uint64
		is   error
		want string
	}{
		{2, ErrCorrupt, "manifest j/checkpoints/00000000000000000002.manifest in test://store: corrupt checkpoint data: it describes checkpoint 1 of job \"j\", whose manifest is j/checkpoints/00000000000000000001.manifest"},
		{3, ErrCorrupt, "decode manifest j/checkpoints/00000000000000000003.manifest in test://store: corrupt checkpoint data: truncated"},
		{4, nil, "read manifest j/checkpoints/00000000000000000004.manifest in test://store: 503 slow down"},
		{5, ErrNotFound, "read manifest j/checkpoints/00000000000000000005.manifest in test://store"},
	} {
		_, err := ReadManifest(ctx, s, ManifestName("j", tc.id))
		if err == nil || tc.is != nil && !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ReadManifest(%d) = %v\nwant %v containing %q", tc.id, err, tc.is, tc.want)
		}
	}
}

func TestLatestCheckpoint(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		setup func(s *catalogTestStore)
		want  string // "" for none, "checkpoint N" / "savepoint N", or "error: <substring>"
	}{
		{"empty store", func(*catalogTestStore) {}, ""},
		{"newest checkpoint", func(s *catalogTestStore) {
			catalogTestSnapshot(t, s, KindCheckpoint, 1)
			catalogTestSnapshot(t, s, KindCheckpoint, 2)
			catalogTestSnapshot(t, s, KindSavepoint, 1)
		}, "checkpoint 2"},
		{"older manifest corrupt does not matter", func(s *catalogTestStore) {
			s.objs[ManifestName("j", 1)] = []byte("garbage")
			catalogTestSnapshot(t, s, KindCheckpoint, 2)
		}, "checkpoint 2"},
		// Sinks committed on the savepoint's completion, so it is what the
		// job must restart from.
		{"savepoint newer than checkpoints", func(s *catalogTestStore) {
			catalogTestSnapshot(t, s, KindCheckpoint, 2)
			catalogTestSnapshot(t, s, KindSavepoint, 3)
		}, "savepoint 3"},
		{"newest corrupt", func(s *catalogTestStore) {
			catalogTestSnapshot(t, s, KindCheckpoint, 1)
			s.objs[ManifestName("j", 2)] = []byte("OFCKMF\x00\x01")
		}, "error: latest checkpoint 2 of job \"j\" cannot be restored, so the job refuses to start: decode manifest j/checkpoints/00000000000000000002.manifest in test://store: corrupt checkpoint data: truncated at byte 8 (reading body length) (falling back to an older checkpoint could duplicate output already committed for checkpoint 2; restore an older checkpoint explicitly if that is acceptable)"},
		{"newest unreadable", func(s *catalogTestStore) {
			catalogTestSnapshot(t, s, KindCheckpoint, 1)
			catalogTestSnapshot(t, s, KindCheckpoint, 2)
			s.failGet[ManifestName("j", 2)] = errors.New("permission denied")
		}, "error: latest checkpoint 2 of job \"j\" cannot be restored"},
		{"newest savepoint corrupt", func(s *catalogTestStore) {
			catalogTestSnapshot(t, s, KindCheckpoint, 1)
			s.objs[SavepointManifestName("j", 2)] = []byte("x")
		}, "error: latest savepoint 2 of job \"j\" cannot be restored"},
		{"same id twice", func(s *catalogTestStore) {
			catalogTestSnapshot(t, s, KindCheckpoint, 2)
			catalogTestSnapshot(t, s, KindSavepoint, 2)
		}, "error: both j/checkpoints/00000000000000000002.manifest and j/savepoints/00000000000000000002/manifest exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newCatalogTestStore()
			tc.setup(s)
			m, err := LatestCheckpoint(ctx, s, "j")
			var got string
			switch {
			case err != nil:
				got = "error: " + err.Error()
				if want, ok := strings.CutPrefix(tc.want, "error: "); ok && strings.Contains(err.Error(), want) {
					return
				}
			case m != nil:
				got = fmt.Sprintf("%s %d", m.Kind, m.ID)
			}
			if got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestVerifyHandles(t *testing.T) {
	ctx := context.Background()
	a, b := DataName("j", 1, "a.sst"), DataName("j", 1, "b.sst")
	for _, tc := range []struct {
		name   string
		damage func(s *catalogTestStore)
		is     error
		want   string
	}{
		{"intact", func(*catalogTestStore) {}, nil, ""},
		{"missing", func(s *catalogTestStore) { delete(s.objs, b) }, ErrNotFound, "verify checkpoint 1 of job \"j\": object j/data/00000000000000000001/b.sst in test://store"},
		{"shorter", func(s *catalogTestStore) { s.objs[a] = s.objs[a][1:] }, ErrCorrupt, "a.sst in test://store: corrupt checkpoint data: 32 bytes, 33 recorded"},
		{"longer", func(s *catalogTestStore) { s.objs[a] = append(s.objs[a], 'x', 'y') }, ErrCorrupt, "larger than the 33 bytes recorded"},
		{"bit flip", func(s *catalogTestStore) { s.objs[b] = append([]byte{'J'}, s.objs[b][1:]...) }, ErrCorrupt, "b.sst in test://store: corrupt checkpoint data: crc32c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newCatalogTestStore()
			m := catalogTestSnapshot(t, s, KindCheckpoint, 1, a, b, a)
			tc.damage(s)
			err := VerifyHandles(ctx, s, m)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant %v containing %q", err, tc.is, tc.want)
			}
		})
	}
}
