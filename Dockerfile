# The aideploy image: compose.yaml's gateway service and the prewarm CronJobs
# run it. `make image` builds the static binary first, so no base image is pulled.
FROM scratch
COPY bin/aideploy-static /usr/local/bin/aideploy
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/aideploy"]
CMD ["gateway", "serve", "--listen", "0.0.0.0:8080", "--admin-listen", "0.0.0.0:8081"]
