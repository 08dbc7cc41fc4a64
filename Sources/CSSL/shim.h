// libssl (OpenSSL 3) for Sources/PGKeep/Transport, the one place TLS is used. Several of the calls
// pgkeep needs are macros over SSL_CTX_ctrl/SSL_ctrl, which Swift cannot import: the inline
// functions below give them names.
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

// TLS 1.3 and nothing else: no negotiation down to an older protocol.
static inline int pgkeep_ssl_ctx_tls13_only(SSL_CTX *ctx) {
    return SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) == 1
        && SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) == 1;
}

// Blocking sockets: let SSL_read/SSL_write retry after a renegotiation-like event themselves.
static inline void pgkeep_ssl_ctx_auto_retry(SSL_CTX *ctx) {
    SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY);
}

// The name the client expects in the server's certificate (DNS name or IP address in its
// subjectAltName, else its CN), checked during the handshake.
static inline int pgkeep_ssl_expect_host(SSL *ssl, const char *name) {
    X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    // An IP address is checked as one, a name as a DNS name.
    if (X509_VERIFY_PARAM_set1_ip_asc(param, name) == 1) return 1;
    return X509_VERIFY_PARAM_set1_host(param, name, 0);
}

// The common name of the peer's certificate into buf (empty when there is none).
static inline void pgkeep_ssl_peer_common_name(SSL *ssl, char *buf, int size) {
    buf[0] = 0;
    X509 *cert = SSL_get1_peer_certificate(ssl);
    if (cert == NULL) return;
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, size) < 0) buf[0] = 0;
    X509_free(cert);
}

// The peer certificate's subject and issuer, one line each, for refusals ("what was presented").
static inline int pgkeep_ssl_peer_names(SSL *ssl, char *subject, char *issuer, int size) {
    subject[0] = issuer[0] = 0;
    X509 *cert = SSL_get1_peer_certificate(ssl);
    if (cert == NULL) return 0;
    X509_NAME_oneline(X509_get_subject_name(cert), subject, size);
    X509_NAME_oneline(X509_get_issuer_name(cert), issuer, size);
    X509_free(cert);
    return 1;
}

// The first certificate a handshake refused, recorded by the verify callback so that both sides
// can say what was presented and why it was refused.
typedef struct {
    long error;
    int depth;
    char subject[256];
    char issuer[256];
} pgkeep_verify_failure;

static inline int pgkeep_verify_callback(int ok, X509_STORE_CTX *store) {
    if (ok) return ok;
    SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
    pgkeep_verify_failure *failure = ssl ? SSL_get_ex_data(ssl, 0) : NULL;
    if (failure != NULL && failure->error == 0) {
        failure->error = X509_STORE_CTX_get_error(store);
        failure->depth = X509_STORE_CTX_get_error_depth(store);
        X509 *cert = X509_STORE_CTX_get_current_cert(store);
        if (cert != NULL) {
            X509_NAME_oneline(X509_get_subject_name(cert), failure->subject, sizeof failure->subject);
            X509_NAME_oneline(X509_get_issuer_name(cert), failure->issuer, sizeof failure->issuer);
        }
    }
    return ok;
}

// Verify the peer's certificate against the context's CA; `require`: a peer without one fails.
static inline void pgkeep_ssl_ctx_verify_peer(SSL_CTX *ctx, int require) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (require ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), pgkeep_verify_callback);
}

// No verification of the peer (server-ping without a CA file: it only asks whether an agent runs).
static inline void pgkeep_ssl_ctx_verify_none(SSL_CTX *ctx) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
}

static inline int pgkeep_ssl_record_failures(SSL *ssl, pgkeep_verify_failure *failure) {
    return SSL_set_ex_data(ssl, 0, failure);
}

static inline const char *pgkeep_x509_error_text(long error) {
    return X509_verify_cert_error_string(error);
}

// The oldest queued OpenSSL error as text (empty when none); the queue is emptied.
static inline void pgkeep_ssl_error_text(char *buf, size_t size) {
    buf[0] = 0;
    unsigned long first = ERR_get_error();
    if (first != 0) ERR_error_string_n(first, buf, size);
    ERR_clear_error();
}
