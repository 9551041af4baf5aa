# sign.Dockerfile: signs the modules of an unsigned module image (KMM sign semantics).
# Built by build.sh with BuildKit's dockerfile frontend:
#   --opt context:unsigned=docker-image://<unsigned image>   the image to sign
#   --opt build-arg:SIGN_IMAGE=<image with sign-file>         e.g. KMM's signimage
#   --opt build-arg:KMM_DIR_NAME=<modprobe.dirName>           default /opt
#   --secret id=kmm-sign-key,src=<key.pem> --secret id=kmm-sign-cert,src=<cert.pem>
# The build context holds sign.sh and files-to-sign (one path or glob a line;
# empty: every *.ko under KMM_DIR_NAME/lib/modules). The key never enters a layer.
ARG SIGN_IMAGE
ARG KMM_DIR_NAME=/opt

FROM unsigned AS source

FROM ${SIGN_IMAGE} AS signer
ARG KMM_DIR_NAME
USER 0
COPY --from=source ${KMM_DIR_NAME} /kmm/root${KMM_DIR_NAME}
RUN --mount=type=bind,target=/kmm/ctx \
    --mount=type=secret,id=kmm-sign-key,target=/kmm/sign/key/key.pem,required=true \
    --mount=type=secret,id=kmm-sign-cert,target=/kmm/sign/cert/cert.pem,required=true \
    KMM_ROOT=/kmm/root KMM_DIR_NAME="${KMM_DIR_NAME}" KMM_FILES_TO_SIGN_FILE=/kmm/ctx/files-to-sign \
    KMM_SIGN_KEY=/kmm/sign/key/key.pem KMM_SIGN_CERT=/kmm/sign/cert/cert.pem \
    /bin/sh /kmm/ctx/sign.sh

FROM source
ARG KMM_DIR_NAME
COPY --from=signer /kmm/root${KMM_DIR_NAME} ${KMM_DIR_NAME}
