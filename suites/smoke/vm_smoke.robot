*** Settings ***
Documentation    Smoke test of the built-in VM target: boot the guest with one emulated NVMe SSD,
...              run a short mixed random read/write job in it, and judge it by the threshold
...              profile ${VM_PROFILE} (default emulated).

Resource         ../../resources/vm.resource

Test Tags        smoke    vm


*** Variables ***
${RUNTIME}    5


*** Test Cases ***
Boot VM And Run Short Mixed Job
    [Documentation]    Launch, wait until ready, run 70/30 randrw for ${RUNTIME} s on /dev/nvme0n1.
    ${vm}    Launch NVMe VM    name=smoke    size=1G
    ${result}    Run Fio Job On VM    ${vm}    mixed_randrw    runtime=${RUNTIME}
    Fio Result Should Meet Thresholds    ${result}    profile=${VM_PROFILE}
