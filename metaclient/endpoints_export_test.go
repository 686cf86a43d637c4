package metaclient

// CodeNotLeader lets the external tests answer as a follower.
const CodeNotLeader = codeNotLeader
