*** Settings ***
Documentation    The seed's workload set against the host target (a scratch file under the output
...              directory, or ${HOST_DEVICE}), judged by the threshold profile ${HOST_PROFILE}.
...
...              Example on a scratch drive (its data is destroyed), judged by its datasheet's profile:
...              robot --variable HOST_PROFILE:datacenter --variable HOST_DEVICE:/dev/nvme1n1
...              suites/performance/host_workloads.robot

Resource         ../../resources/host_target.resource

Suite Setup      Prepare Host Target

Test Tags        performance    host


*** Variables ***
${ENDURANCE_RUNTIME}    ${RUNTIME}


*** Test Cases ***
Mixed Random Read Write
    [Documentation]    70/30 random read/write, 4 KiB, QD16.
    [Tags]    smoke
    ${result}    Run Fio Job On Host    mixed_randrw
    Fio Result Should Meet Thresholds    ${result}    profile=${HOST_PROFILE}
    Fio Result Should Be Consistent    ${result}    profile=${HOST_PROFILE}    ramp=1

Random Multi IO Stress
    [Documentation]    Small, medium and large random I/O of different mixes at once.
    ${result}    Run Fio Job On Host    random_multi_io
    Fio Result Should Meet Thresholds    ${result}    profile=${HOST_PROFILE}

Multi Queue
    [Documentation]    Four submitters at QD32 each, reported as one group.
    ${result}    Run Fio Job On Host    multi_queue
    Fio Result Should Meet Thresholds    ${result}    profile=${HOST_PROFILE}

Multi Device
    [Documentation]    The same load on two targets at once; each must meet the limits on its own.
    ${result}    Run Fio Job On Host    multi_device
    Fio Result Should Meet Thresholds    ${result}    profile=${HOST_PROFILE}

Multi Tenant Stress
    [Documentation]    Rate-limited tenants keep their rate and latency beside a noisy neighbour.
    [Tags]    qos
    ${result}    Run Fio Job On Host    multi_tenant
    Fio Result Should Meet Thresholds    ${result}    profile=${HOST_PROFILE}

Queue Depth Saturation Sweep
    [Documentation]    QD 1, 4, 16, 64 one after another: IOPS must not fall as depth rises.
    ${result}    Run Fio Job On Host    qd_sweep    runtime=4
    Fio Result Should Meet Thresholds    ${result}    profile=${HOST_PROFILE}
    IOPS Should Not Fall With Queue Depth    ${result}    qd1    qd16

A Target Whose IOPS Fall With Depth Fails The Sweep
    [Documentation]    Negative proof: QD16 held to 200 IOPS (a target that serves deep queues worse
    ...    than shallow ones) fails the depth check, naming both jobs.
    ${result}    Run Fio Job On Host    qd_sweep    runtime=4    qd16.rate_iops=200
    Run Keyword And Expect Error    IOPS fell with queue depth: job 'qd16' averaged *of the shallower job 'qd1'*
    ...    IOPS Should Not Fall With Queue Depth    ${result}    qd1    qd16

Write Endurance
    [Documentation]    Sustained random writes; per-second IOPS must stay steady.
    ...    Set ${ENDURANCE_RUNTIME} (seconds) for a real endurance run.
    [Tags]    endurance
    ${result}    Run Fio Job On Host    write_endurance    runtime=${ENDURANCE_RUNTIME}
    Fio Result Should Meet Thresholds    ${result}    profile=${HOST_PROFILE}
    Fio Result Should Be Consistent    ${result}    profile=${HOST_PROFILE}    ramp=1

Latency Probe
    [Documentation]    QD1 4 KiB random reads: the device's own service time.
    [Tags]    smoke
    ${result}    Run Fio Job On Host    latency_probe
    Fio Result Should Meet Thresholds    ${result}    profile=${HOST_PROFILE}

SPDK Random Read
    [Documentation]    4 KiB random reads through the SPDK fio plugin named by ${SPDK_FIO_PLUGIN}
    ...    against ${SPDK_FILENAME} (e.g. trtype=PCIe traddr=0000.01.00.0 ns=1).
    [Tags]    spdk
    ${plugin}    Get Environment Variable    SPDK_FIO_PLUGIN    default=${EMPTY}
    Skip If    not $plugin or not os.path.isfile($plugin)
    ...    SPDK fio plugin not installed: set SPDK_FIO_PLUGIN to the path of spdk_nvme (build/fio/spdk_nvme)
    ${filename}    Get Environment Variable    SPDK_FILENAME    default=trtype=PCIe traddr=0000.01.00.0 ns=1
    ${result}    Run Fio Job    spdk_randread    ioengine=external:${plugin}    filename=${filename}
    ...    runtime=${RUNTIME}
    Fio Result Should Meet Thresholds    ${result}    profile=${HOST_PROFILE}
