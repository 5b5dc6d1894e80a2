// The pod sandbox ("pause") process. No registry is reachable here, so the image
// containerd's sandbox_image names is built from this and imported.
module modeldock.local/kubernetes-pause

go 1.24.0
