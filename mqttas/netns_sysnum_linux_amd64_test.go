package mqttas

// sysSetns is setns(2)'s number: package syscall lists it for every Linux architecture but amd64 and 386.
const sysSetns = 308
