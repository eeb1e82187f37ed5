/* demo_cert.c - see demo_cert.h. */
#include "demo/demo_cert.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static int write_pem(const char *path, EVP_PKEY *key, X509 *crt)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	FILE *f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return -1;
	}
	int ok = key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL)
		     : PEM_write_X509(f, crt);
	return fclose(f) == 0 && ok == 1 ? 0 : -1;
}

int demo_cert_make(const char *name, const char *cert_path,
		   const char *key_path, char *err, size_t errlen)
{
	int rc = -1;
	if (errlen)
		err[0] = '\0';
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *crt = X509_new();
	X509_EXTENSION *ext = NULL;
	char san[300];
	snprintf(san, sizeof(san), "DNS:%s", name);
	if (!key || !crt)
		goto out;
	X509_set_version(crt, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(crt), 1);
	X509_gmtime_adj(X509_getm_notBefore(crt), -3600);
	X509_gmtime_adj(X509_getm_notAfter(crt), 30L * 86400);
	X509_NAME *subj = X509_get_subject_name(crt);
	X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_ASC,
				   (const unsigned char *)name, -1, -1, 0);
	X509_set_issuer_name(crt, subj);
	X509_set_pubkey(crt, key);
	ext = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);
	if (!ext || !X509_add_ext(crt, ext, -1) ||
	    !X509_sign(crt, key, EVP_sha256()))
		goto out;
	if (write_pem(key_path, key, NULL) < 0 ||
	    write_pem(cert_path, NULL, crt) < 0) {
		snprintf(err, errlen, "cannot write %s or %s", cert_path,
			 key_path);
		goto out;
	}
	rc = 0;
out:
	if (rc < 0 && err[0] == '\0')
		snprintf(err, errlen, "cannot make a demo certificate");
	X509_EXTENSION_free(ext);
	X509_free(crt);
	EVP_PKEY_free(key);
	return rc;
}
