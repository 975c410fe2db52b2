package fe_test

import (
	"fmt"

	"github.com/aksml/aksml/kube/fe"
)

// A front-end outside the cluster reaches pods through a mapped address
// range: --replica-address-prefix 10.244.=127.77. rewrites pod addresses.
func ExampleParseReplicaAddressPrefix() {
	url, err := fe.ParseReplicaAddressPrefix("10.244.=127.77.")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(url("10.244.3.7", 5001))
	fmt.Println(url("10.2.3.4", 5001))
	// Output:
	// http://127.77.3.7:5001
	// http://10.2.3.4:5001
}
