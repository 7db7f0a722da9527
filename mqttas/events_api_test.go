package mqttas_test

import (
	"reflect"
	"slices"
	"testing"

	"github.com/mqttas/mqttas-go/mqttas"
)

// An application can wait on and clear Up and Down but not set them: only the client reports connections
// and outages. Whatever method is added to Event must keep it so.
func TestEventCannotBeSetByApplication(t *testing.T) {
	typ := reflect.TypeFor[*mqttas.Event]()
	var got []string
	for m := range typ.Methods() {
		got = append(got, m.Name)
	}
	if want := []string{"Clear", "IsSet", "Wait"}; !slices.Equal(got, want) {
		t.Errorf("*Event's exported methods are %v, want %v (none that sets the flag)", got, want)
	}
	for f := range reflect.TypeFor[mqttas.Event]().Fields() {
		if f.IsExported() {
			t.Errorf("Event has the exported field %s", f.Name)
		}
	}
}
