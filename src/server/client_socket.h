// Whether an HTTP client is still there while its request waits for the pipeline. cpp-httplib 0.11 (Debian
// 12's) does not hand a handler its socket, so the socket is found among the process's descriptors by the
// connection's addresses, and watched for the peer's close.
#pragma once

#include <string>

namespace kakusan::server {

// The connected socket whose peer is remote_addr:remote_port and whose local port is local_port; -1 if none.
int find_client_socket(const std::string& remote_addr, int remote_port, int local_port);

// True once the peer has closed the connection (end of stream, hang-up or an error on the socket).
bool peer_closed(int fd);

}  // namespace kakusan::server
